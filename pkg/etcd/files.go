package etcd

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Snapshot file names: etcd-TIME.db for a snapshot a user saved,
// etcd-scheduled-TIME.db for one the schedule took. Only the latter are
// ever pruned.
const (
	snapshotPrefix  = "etcd-"
	scheduledPrefix = "etcd-scheduled-"
	snapshotExt     = ".db"
	timeLayout      = "20060102T150405Z"
)

// SnapshotName is the file name of a snapshot taken at t.
func SnapshotName(t time.Time, scheduled bool) string {
	prefix := snapshotPrefix
	if scheduled {
		prefix = scheduledPrefix
	}
	return prefix + t.UTC().Format(timeLayout) + snapshotExt
}

// IsScheduled tells whether name is a scheduled snapshot's.
func IsScheduled(name string) bool {
	_, ok := nameTime(name, scheduledPrefix)
	return ok
}

func nameTime(name, prefix string) (time.Time, bool) {
	stamp, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return time.Time{}, false
	}
	stamp, ok = strings.CutSuffix(stamp, snapshotExt)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(timeLayout, stamp)
	return t, err == nil
}

// snapshotTime is when the snapshot name was taken, by its name when it
// says, else by its file's time.
func snapshotTime(name string, mod time.Time) time.Time {
	for _, p := range []string{scheduledPrefix, snapshotPrefix} {
		if t, ok := nameTime(name, p); ok {
			return t
		}
	}
	return mod.UTC()
}

// List lists the snapshots (*.db) in dir, newest first, without reading
// them; a dir that does not exist holds none.
func List(dir string) ([]SnapshotInfo, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []SnapshotInfo
	for _, e := range entries {
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), snapshotExt) || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		info := SnapshotInfo{Path: filepath.Join(dir, e.Name()), Size: fi.Size(), Time: snapshotTime(e.Name(), fi.ModTime()), Scheduled: IsScheduled(e.Name())}
		info.SHA256, _ = readSum(info.Path + SumSuffix)
		out = append(out, info)
	}
	slices.SortStableFunc(out, func(a, b SnapshotInfo) int {
		if c := b.Time.Compare(a.Time); c != 0 {
			return c
		}
		return strings.Compare(b.Path, a.Path)
	})
	return out, nil
}

// Prune deletes the scheduled snapshots in dir beyond the newest keep, with
// their sum files, and returns the paths it deleted. A snapshot a user
// saved is never deleted.
func Prune(dir string, keep int) ([]string, error) {
	if keep < 1 {
		return nil, fmt.Errorf("keeping %d snapshots would delete the newest: keep at least 1", keep)
	}
	all, err := List(dir)
	if err != nil {
		return nil, err
	}
	var deleted []string
	kept := 0
	for _, s := range all {
		if !s.Scheduled {
			continue
		}
		if kept < keep {
			kept++
			continue
		}
		if err := os.Remove(s.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return deleted, err
		}
		os.Remove(s.Path + SumSuffix)
		deleted = append(deleted, s.Path)
	}
	return deleted, nil
}
