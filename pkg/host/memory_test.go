package host

import "testing"

func TestMemoryOfTakesTheSmallerOfMemTotalAndTheCgroupLimit(t *testing.T) {
	meminfo := "MemTotal:       24683644 kB\nMemFree:        23806832 kB\n"
	for _, c := range []struct {
		limits []string
		want   uint64
	}{
		{nil, 24683644 << 10},
		{[]string{"max\n", "9223372036854771712\n"}, 24683644 << 10}, // no limit, v2 and v1
		{[]string{"", "1073741824\n"}, 1 << 30},                      // a machine of 1 GiB (v1)
		{[]string{"2147483648\n", ""}, 2 << 30},                      // v2
	} {
		if got := memoryOf(meminfo, c.limits...); got != c.want {
			t.Errorf("limits %q: %d, want %d", c.limits, got, c.want)
		}
	}
	if got := memoryOf("", "1073741824"); got != 1<<30 {
		t.Errorf("without meminfo: %d", got)
	}
}
