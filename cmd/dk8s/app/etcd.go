package app

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/dk8s/dk8s/pkg/bootstrap"
	"github.com/dk8s/dk8s/pkg/etcd"
)

func newEtcd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "etcd",
		Short: "Look after the cluster's etcd: status, defragmentation, snapshots, restore",
		Long: `Look after the etcd of the control plane kept in --dir: its members, leader,
sizes and alarms; the defragmentation that brings back an etcd that ran out
of space; snapshots saved beside the cluster (DIR/snapshots, root's alone:
a snapshot holds every Secret) and a restore from one.

These commands run on a control plane and reach etcd on 127.0.0.1:2379 with
the apiserver's client certificate.`,
		Example: `  dk8s etcd status
  dk8s etcd snapshot save
  dk8s etcd snapshot list
  dk8s etcd snapshot restore /var/lib/dk8s/snapshots/etcd-20250101T000000Z.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	snap := &cobra.Command{
		Use:   "snapshot",
		Short: "Save, list and restore etcd snapshots",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	snap.AddCommand(newSnapshotSave(g), newSnapshotList(g), newSnapshotRestore(g), newSnapshotSchedule(g))
	cmd.AddCommand(newEtcdStatus(g), newEtcdDefrag(g), snap)
	return cmd
}

type etcdStatusFlags struct {
	clusterFlags
	output string
}

func newEtcdStatus(g *globals) *cobra.Command {
	f := &etcdStatusFlags{}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show etcd's members, leader, database sizes and alarms",
		Long: `Show etcd's members (ID, name, peer and client URLs, learner or not), which
is the leader, each member's database size (and how much of it is in use:
'dk8s etcd defrag' gives the rest back), raft index and version, and the
active alarms.

Exits non-zero when an alarm is active or a member does not answer. Under
the NOSPACE alarm etcd refuses every write, so the cluster can change
nothing: free disk space under the cluster directory, then run 'dk8s etcd
defrag'.`,
		Example: "  dk8s etcd status\n  dk8s etcd status -o json | jq .alarms",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return runEtcdStatus(cmd, g, f) },
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	return cmd
}

func runEtcdStatus(cmd *cobra.Command, g *globals, f *etcdStatusFlags) error {
	if err := checkOutput(f.output, "table", "json"); err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	c, err := bootstrap.EtcdClient(cmd.Context(), cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Status(cmd.Context(), 5*time.Second)
	if err != nil {
		return fmt.Errorf("%w; is etcd running ('dk8s ps', 'dk8s logs etcd')?", err)
	}
	if f.output == "json" {
		err = writeJSON(g.streams.Out, etcdStatusView(st))
	} else {
		err = printEtcdStatus(g.streams.Out, st)
	}
	if err != nil {
		return err
	}
	problems := st.Problems()
	if len(problems) == 0 {
		return nil
	}
	for _, p := range problems {
		fmt.Fprintln(g.streams.Err, "problem: "+p)
	}
	if st.HasAlarm(etcd.AlarmNoSpace) {
		fmt.Fprintf(g.streams.Err, "etcd is out of space and refuses every write: the cluster can change nothing until it is recovered.\n"+
			"  1. free disk space under %s (see 'df -h %s')\n  2. dk8s etcd defrag --dir %s   (compacts, defragments and disarms the alarm)\n", cfg.Dir, cfg.Dir, cfg.Dir)
	}
	return ExitError{Code: 1}
}

// etcdStatusJSON is status -o json: member IDs in hexadecimal, as the
// table and etcdctl show them.
type etcdStatusJSON struct {
	Members []struct {
		ID string `json:"id"`
		etcd.Member
	} `json:"members"`
	Leader    string `json:"leader"`
	Endpoints []struct {
		Member string `json:"member"`
		etcd.EndpointStatus
	} `json:"endpoints"`
	Alarms   []etcd.Alarm `json:"alarms"`
	Problems []string     `json:"problems"`
}

func etcdStatusView(st *etcd.Status) etcdStatusJSON {
	v := etcdStatusJSON{Leader: st.LeaderName, Alarms: st.Alarms, Problems: st.Problems()}
	for _, m := range st.Members {
		v.Members = append(v.Members, struct {
			ID string `json:"id"`
			etcd.Member
		}{m.IDString(), m})
	}
	for _, e := range st.Endpoints {
		v.Endpoints = append(v.Endpoints, struct {
			Member string `json:"member"`
			etcd.EndpointStatus
		}{etcd.FormatID(e.MemberID), e})
	}
	if v.Alarms == nil {
		v.Alarms = []etcd.Alarm{}
	}
	if v.Problems == nil {
		v.Problems = []string{}
	}
	return v
}

func printEtcdStatus(w io.Writer, st *etcd.Status) error {
	var rows [][]string
	for _, m := range st.Members {
		role := "member"
		if m.Learner {
			role = "learner"
		}
		if m.ID == st.Leader {
			role = "leader"
		}
		rows = append(rows, []string{orDash(m.Name), m.IDString(), role, orDash(strings.Join(m.PeerURLs, ",")), orDash(strings.Join(m.ClientURLs, ","))})
	}
	if err := table(w, []string{"MEMBER", "ID", "ROLE", "PEER URLS", "CLIENT URLS"}, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	rows = nil
	for _, e := range st.Endpoints {
		if e.Unreachable != "" {
			rows = append(rows, []string{e.Endpoint, "-", "-", "-", "-", "unreachable: " + e.Unreachable})
			continue
		}
		state := "ok"
		if len(e.Errors) > 0 {
			state = strings.Join(e.Errors, "; ")
		}
		rows = append(rows, []string{e.Endpoint, e.Version, humanBytes(e.DBSize), humanBytes(e.DBSizeInUse), fmt.Sprint(e.RaftIndex), state})
	}
	if err := table(w, []string{"ENDPOINT", "VERSION", "DB SIZE", "IN USE", "RAFT INDEX", "STATUS"}, rows); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(st.Alarms) == 0 {
		fmt.Fprintln(w, "ALARMS: none")
		return nil
	}
	for _, a := range st.Alarms {
		fmt.Fprintf(w, "ALARM: %s (member %s)\n", a.Type, a.Member)
	}
	return nil
}

// humanBytes writes n in the largest binary unit that keeps it at least 1.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func newEtcdDefrag(g *globals) *cobra.Command {
	f := &clusterFlags{}
	cmd := &cobra.Command{
		Use:   "defrag",
		Short: "Compact and defragment etcd, and disarm its NOSPACE alarm",
		Long: `Give etcd its space back and let it take writes again: compact its history to
the current revision, defragment each member in turn (etcd pauses while it
rewrites its database), then disarm the NOSPACE alarm.

When etcd raised NOSPACE because the disk under the cluster directory
filled, free space there first: a member still out of space raises the
alarm again at the next write.`,
		Example: "  dk8s etcd defrag",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			c, err := bootstrap.EtcdClient(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer c.Close()
			d, err := c.Defragment(cmd.Context())
			if d.Revision > 0 {
				fmt.Fprintf(g.streams.Err, "compacted etcd's history to revision %d\n", d.Revision)
			}
			for _, m := range d.Members {
				fmt.Fprintf(g.streams.Err, "defragmented %s: %s -> %s\n", m.Endpoint, humanBytes(m.Before), humanBytes(m.After))
			}
			for _, a := range d.Disarmed {
				fmt.Fprintf(g.streams.Err, "disarmed the %s alarm of member %s\n", a.Type, a.Member)
			}
			return err
		},
	}
	f.add(cmd)
	return cmd
}

func newSnapshotSave(g *globals) *cobra.Command {
	f := &clusterFlags{}
	cmd := &cobra.Command{
		Use:   "save [FILE]",
		Short: "Save a snapshot of etcd to a file, with its sha256 beside it",
		Long: `Save a snapshot of etcd to FILE, by default DIR/snapshots/etcd-TIME.db (the
time in UTC), and its sha256 to FILE.sha256 as sha256sum writes it. An
existing file is never overwritten. Both are root's alone (0600): a
snapshot holds every Secret of the cluster; copy it somewhere as safe.

Prints the file's path, size and sha256.`,
		Example: "  dk8s etcd snapshot save\n  dk8s etcd snapshot save /backup/before-upgrade.db",
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			file := ""
			if len(args) == 1 {
				file = args[0]
			}
			info, err := bootstrap.SaveSnapshot(cmd.Context(), cfg, file)
			if err != nil {
				return fmt.Errorf("saving an etcd snapshot: %w", err)
			}
			fmt.Fprintf(g.streams.Out, "%s\t%s\tsha256:%s\n", info.Path, humanBytes(info.Size), info.SHA256)
			return nil
		},
	}
	f.add(cmd)
	return cmd
}

type snapshotListFlags struct {
	clusterFlags
	output string
}

func newSnapshotList(g *globals) *cobra.Command {
	f := &snapshotListFlags{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the snapshots in DIR/snapshots, newest first",
		Long: `List the snapshots in the cluster's snapshots directory, newest first, with
their size and time, and whether the schedule took them (those are pruned
to the newest --etcd-snapshot-retention; the others are yours, never
deleted).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(f.output, "table", "json"); err != nil {
				return err
			}
			cfg, err := f.config()
			if err != nil {
				return err
			}
			list, err := etcd.List(cfg.SnapshotsDir())
			if err != nil {
				return err
			}
			if f.output == "json" {
				if list == nil {
					list = []etcd.SnapshotInfo{}
				}
				return writeJSON(g.streams.Out, list)
			}
			if len(list) == 0 {
				fmt.Fprintf(g.streams.Err, "No snapshots in %s: save one with 'dk8s etcd snapshot save'.\n", cfg.SnapshotsDir())
				return nil
			}
			var rows [][]string
			for _, s := range list {
				kind := "saved"
				if s.Scheduled {
					kind = "scheduled"
				}
				rows = append(rows, []string{filepath.Base(s.Path), humanBytes(s.Size), s.Time.UTC().Format(time.RFC3339), kind})
			}
			return table(g.streams.Out, []string{"NAME", "SIZE", "TIME", "TAKEN"}, rows)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	return cmd
}

type snapshotRestoreFlags struct {
	clusterFlags
	timeout time.Duration
	force   bool
}

func newSnapshotRestore(g *globals) *cobra.Command {
	f := &snapshotRestoreFlags{}
	cmd := &cobra.Command{
		Use:   "restore FILE",
		Short: "Bring a single-member etcd back to a snapshot",
		Long: `Bring the cluster's etcd back to the snapshot FILE, on a control plane whose
etcd has this host as its only member.

FILE is checked first, against FILE.sha256 when it is there and the sha256
etcd writes at the end of every snapshot: a mismatch is refused with
nothing changed. So is a cluster of several members: reset the other
control planes, restore on one, then join the others again.

Then etcdutl (from the image the cluster's etcd runs) makes a new data
directory from FILE; the apiserver, controller-manager, scheduler,
etcd-snapshotter and etcd are stopped; DIR/etcd is moved aside to
DIR/etcd.before-restore-TIME, never deleted; the new data takes its place,
and the components start again. Everything the cluster wrote after the
snapshot is gone from it; the old directory keeps it until you delete it.`,
		Example: "  dk8s etcd snapshot restore /var/lib/dk8s/snapshots/etcd-20250101T000000Z.db",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, engine, err := f.connect(cmd, g)
			if err != nil {
				return err
			}
			defer engine.Close()
			fmt.Fprintf(g.streams.Err, "Restoring etcd of %q in %s from %s\n", cfg.ClusterName, cfg.Dir, args[0])
			return bootstrap.RestoreSnapshot(cmd.Context(), engine, cfg, args[0], bootstrap.RestoreOptions{Events: startEvents(g), Timeout: f.timeout, Force: f.force})
		},
	}
	f.add(cmd)
	cmd.Flags().DurationVar(&f.timeout, "timeout", 3*time.Minute, "how long each component may take to become healthy again")
	cmd.Flags().BoolVar(&f.force, "force", false, "on a control plane that takes others (--ha): restore even though etcd cannot say whether other members run (reset them first)")
	return cmd
}

type snapshotScheduleFlags struct {
	files     etcd.TLSFiles
	endpoints []string
	dir       string
	interval  time.Duration
	keep      int
	health    string
}

// newSnapshotSchedule is what the etcd-snapshotter container runs.
func newSnapshotSchedule(g *globals) *cobra.Command {
	f := &snapshotScheduleFlags{}
	cmd := &cobra.Command{
		Use:    "schedule",
		Short:  "Save etcd snapshots every --interval, keeping the newest --retention (run by dk8s start)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.keep < 1 {
				return fmt.Errorf("--retention %d: keep at least 1", f.keep)
			}
			c, err := etcd.New(cmd.Context(), f.endpoints, f.files)
			if err != nil {
				return err
			}
			defer c.Close()
			if err := os.MkdirAll(f.dir, 0o700); err != nil {
				return err
			}
			s := &bootstrap.Snapshotter{Client: c, Dir: f.dir, Interval: f.interval, Keep: f.keep, Log: func(msg string) {
				fmt.Fprintf(g.streams.Err, "%s %s\n", time.Now().UTC().Format(time.RFC3339), msg)
			}}
			return s.Run(cmd.Context(), f.health)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.files.CA, "cacert", "", "etcd's CA `FILE`")
	fl.StringVar(&f.files.Cert, "cert", "", "client certificate `FILE`")
	fl.StringVar(&f.files.Key, "key", "", "client key `FILE`")
	fl.StringSliceVar(&f.endpoints, "endpoints", []string{etcd.DefaultEndpoint}, "etcd client `URLS`")
	fl.StringVar(&f.dir, "snapshot-dir", "", "`DIR` the snapshots are saved in")
	fl.DurationVar(&f.interval, "interval", bootstrap.DefaultSnapshotInterval, "time between snapshots (0: none)")
	fl.IntVar(&f.keep, "retention", bootstrap.DefaultSnapshotRetention, "scheduled snapshots to keep")
	fl.StringVar(&f.health, "health-address", "127.0.0.1:10271", "`HOST:PORT` of its /healthz")
	return cmd
}
