package host

import (
	"os"
	"strconv"
	"strings"
)

// Memory is the memory this host's processes may use, in bytes: the
// smaller of the kernel's MemTotal and the limit of the memory cgroup they
// run in (a VPS that is a container, or a machine given --memory); 0 when
// neither can be read.
func Memory() uint64 {
	meminfo, _ := os.ReadFile("/proc/meminfo")
	v2, _ := os.ReadFile("/sys/fs/cgroup/memory.max")
	v1, _ := os.ReadFile("/sys/fs/cgroup/memory/memory.limit_in_bytes")
	return memoryOf(string(meminfo), string(v2), string(v1))
}

// memoryOf is Memory from the files' contents.
func memoryOf(meminfo string, limits ...string) uint64 {
	var total uint64
	for _, line := range strings.Split(meminfo, "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				if kb, err := strconv.ParseUint(f[0], 10, 64); err == nil {
					total = kb << 10
				}
			}
		}
	}
	for _, l := range limits {
		// "max" (v2), or v1's "no limit", a page-rounded huge number,
		// parse as no smaller than MemTotal and change nothing.
		n, err := strconv.ParseUint(strings.TrimSpace(l), 10, 64)
		if err == nil && n > 0 && (total == 0 || n < total) {
			total = n
		}
	}
	return total
}
