// Package etcd is what dk8s does with a cluster's etcd through its client
// API: status (members, leader, sizes, alarms), snapshots saved to files
// with their sums, the members a control plane joins or leaves with, and
// the compaction, defragmentation and disarm that bring a full etcd back.
// It talks to etcd with a client certificate of the cluster's etcd CA,
// prints nothing, and takes a context first in every call.
package etcd
