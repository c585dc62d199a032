package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// A clustered node marks its store directory and its raft directory with whose they are
// (identityFile: the cluster ID and the node ID), and refuses to start on a directory that
// belongs to another node or cluster, or — unclustered — on one that belongs to a cluster
// node: serving another node's data, or a replica's data alone, would serve wrong data.
// Nothing is deleted or rewritten on inference: the operator fixes the flags or the paths.

const identityFile = "STARLING-NODE"

// identity is the content of an identityFile.
func identity(clusterID, nodeID string) string {
	return "cluster_id=" + clusterID + "\nnode_id=" + nodeID + "\n"
}

// claimDir checks dir's identity file against this node (nodeID "" for an unclustered
// server) and writes it for a clustered node that finds none.
func claimDir(dir, clusterID, nodeID string) error {
	path := filepath.Join(dir, identityFile)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if nodeID == "" {
			return nil
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, []byte(identity(clusterID, nodeID)), 0o644)
	case err != nil:
		return err
	}
	have := string(b)
	if have == identity(clusterID, nodeID) {
		return nil
	}
	owner := strings.NewReplacer("cluster_id=", "cluster ", "\nnode_id=", ", node ", "\n", "").Replace(strings.TrimSpace(have))
	if nodeID == "" {
		return fmt.Errorf("%s belongs to a streaming cluster (%s): start this server with its --clustered flags, or give it a directory of its own", dir, owner)
	}
	return fmt.Errorf("%s belongs to %s, and this server is cluster %s, node %s: refusing to start on another node's data (check --dir, --cluster_log_path, --cluster_node_id and --cluster_id)",
		dir, owner, clusterID, nodeID)
}
