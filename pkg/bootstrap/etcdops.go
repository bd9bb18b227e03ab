package bootstrap

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	etcdc "github.com/dk8s/dk8s/pkg/etcd"
)

// EtcdClient connects to the etcd of the control plane kept in cfg.Dir
// with the apiserver's client certificate, which etcd's CA signed.
func EtcdClient(ctx context.Context, cfg Config) (*etcdc.Client, error) {
	if kept, err := ReadSettings(cfg.Dir); err == nil && kept.IsWorker() {
		return nil, fmt.Errorf("%s holds a worker joined to %s: etcd runs on the control planes; run this there", cfg.Dir, kept.Server)
	}
	files := etcdc.PKIFiles(cfg.PKIDir())
	if _, err := os.Stat(files.Cert); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s does not exist: run this on a control plane, with the --dir it was started with", files.Cert)
	}
	return etcdc.New(ctx, nil, files)
}

// SaveSnapshot saves a snapshot of cfg's etcd to file, or, when file is
// "", to a new file named by the time in cfg's snapshots directory (made
// 0700: a snapshot holds every Secret).
func SaveSnapshot(ctx context.Context, cfg Config, file string) (etcdc.SnapshotInfo, error) {
	if file == "" {
		if err := os.MkdirAll(cfg.SnapshotsDir(), 0o700); err != nil {
			return etcdc.SnapshotInfo{}, err
		}
		file = filepath.Join(cfg.SnapshotsDir(), etcdc.SnapshotName(time.Now(), false))
	}
	abs, err := filepath.Abs(file)
	if err != nil {
		return etcdc.SnapshotInfo{}, err
	}
	c, err := EtcdClient(ctx, cfg)
	if err != nil {
		return etcdc.SnapshotInfo{}, err
	}
	defer c.Close()
	return c.Save(ctx, abs)
}
