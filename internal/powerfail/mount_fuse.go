//go:build !386 && !arm && !mips && !mipsle

package powerfail

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// mountFUSE mounts f's loopback view of f.backing at f.mnt.
func mountFUSE(f *FS) (fuseServer, error) {
	lroot, err := gofs.NewLoopbackRoot(f.backing)
	if err != nil {
		return nil, err
	}
	lb := lroot.(*gofs.LoopbackNode)
	root := &node{LoopbackNode: lb, pf: f}
	lb.RootData.RootNode = root
	zero := time.Duration(0)
	server, err := gofs.Mount(f.mnt, root, &gofs.Options{
		MountOptions: fuse.MountOptions{
			DirectMount: true,
			FsName:      "powerfail",
			Name:        "powerfail",
			// Writes go through the kernel to us at once (no writeback
			// cache: the kernel's FUSE default), reads through the page
			// cache so that bbolt's read-only mmap works.
		},
		// No attribute or entry caching: sizes and names are always ours.
		EntryTimeout:    &zero,
		AttrTimeout:     &zero,
		NegativeTimeout: &zero,
	})
	if err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENODEV) {
			return nil, fmt.Errorf("%w: mount: %v", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("powerfail: mount %s: %w", f.mnt, err)
	}
	return server, nil
}
