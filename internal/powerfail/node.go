//go:build !386 && !arm && !mips && !mipsle

package powerfail

import (
	"context"
	"os"
	"path/filepath"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a loopback node whose changes are recorded by its FS.
type node struct {
	*gofs.LoopbackNode
	pf *FS
}

var (
	_ gofs.NodeWrapChilder    = (*node)(nil)
	_ gofs.NodeCreater        = (*node)(nil)
	_ gofs.NodeOpener         = (*node)(nil)
	_ gofs.NodeOpendirHandler = (*node)(nil)
	_ gofs.NodeFsyncer        = (*node)(nil)
	_ gofs.NodeSetattrer      = (*node)(nil)
	_ gofs.NodeUnlinker       = (*node)(nil)
	_ gofs.NodeRmdirer        = (*node)(nil)
	_ gofs.NodeRenamer        = (*node)(nil)
	_ gofs.NodeMkdirer        = (*node)(nil)
	_ gofs.NodeMknoder        = (*node)(nil)
	_ gofs.NodeSymlinker      = (*node)(nil)
	_ gofs.NodeLinker         = (*node)(nil)
	_ gofs.NodeAllocater      = (*node)(nil)
	_ gofs.NodeCopyFileRanger = (*node)(nil)
)

func (n *node) WrapChild(_ context.Context, ops gofs.InodeEmbedder) gofs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*gofs.LoopbackNode), pf: n.pf}
}

// backing is the node's path in the backing directory.
func (n *node) backing() string { return filepath.Join(n.pf.backing, n.Path(nil)) }

func (n *node) child(name string) string { return filepath.Join(n.backing(), name) }

// created records that name was created in n, if it did not exist before.
func (n *node) created(name string, existed, isDir bool) {
	if existed {
		return
	}
	f := n.pf
	f.meta = append(f.meta, &metaOp{kind: metaCreate, dir: n.backing(), path: n.child(name), isDir: isDir})
	f.stats.Creates++
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	n.pf.mu.Lock()
	existed := exists(n.child(name))
	n.pf.mu.Unlock()
	if existed && flags&syscall.O_TRUNC != 0 {
		// Another process made it between the kernel's lookup and now:
		// truncate it as a recorded change, then open it without O_TRUNC.
		if errno := n.truncatePath(n.child(name), 0); errno != 0 {
			return nil, nil, 0, errno
		}
		flags &^= syscall.O_TRUNC
	}
	n.pf.mu.Lock()
	ch, fh, fl, errno := n.LoopbackNode.Create(ctx, name, readable(flags), mode, out)
	if errno == 0 {
		n.created(name, existed, false)
	}
	n.pf.mu.Unlock()
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return ch, n.wrap(fh), fl, 0
}

func (n *node) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_TRUNC != 0 && flags&syscall.O_ACCMODE != syscall.O_RDONLY {
		if errno := n.truncatePath(n.backing(), 0); errno != 0 {
			return nil, 0, errno
		}
		flags &^= syscall.O_TRUNC
	}
	fh, fl, errno := n.LoopbackNode.Open(ctx, readable(flags))
	if errno != 0 {
		return nil, 0, errno
	}
	return n.wrap(fh), fl, 0
}

// readable turns a write-only open into a read-write one: recording a
// write reads what it overwrites. The kernel still enforces the caller's
// access mode.
func readable(flags uint32) uint32 {
	if flags&syscall.O_ACCMODE == syscall.O_WRONLY {
		flags = flags&^syscall.O_ACCMODE | syscall.O_RDWR
	}
	return flags
}

func (n *node) truncatePath(path string, size int64) syscall.Errno {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return gofs.ToErrno(err)
	}
	defer unix.Close(fd)
	return gofs.ToErrno(n.pf.truncate(fd, size))
}

func (n *node) wrap(fh gofs.FileHandle) gofs.FileHandle {
	lf := fh.(*gofs.LoopbackFile)
	fd, _ := lf.PassthroughFd()
	return &file{LoopbackFile: lf, fd: fd, pf: n.pf, n: n}
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	h, fl, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dir{h: h, n: n}, fl, 0
}

func (n *node) Fsync(ctx context.Context, fh gofs.FileHandle, flags uint32) syscall.Errno {
	if n.IsDir() {
		return n.pf.syncDir(n.backing(), caller(ctx))
	}
	if f, ok := fh.(*file); ok {
		return f.Fsync(ctx, flags)
	}
	fd, err := unix.Open(n.backing(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return gofs.ToErrno(err)
	}
	defer unix.Close(fd)
	return gofs.ToErrno(n.pf.syncFile(fd, n.backing(), caller(ctx)))
}

func (n *node) Setattr(ctx context.Context, fh gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		f, isFile := fh.(*file)
		if !isFile {
			if errno := n.truncatePath(n.backing(), int64(size)); errno != 0 {
				return errno
			}
			in.Valid &^= fuse.FATTR_SIZE
		} else {
			return f.Setattr(ctx, in, out)
		}
	}
	return n.LoopbackNode.Setattr(ctx, fh, in, out)
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.pf.mu.Lock()
	defer n.pf.mu.Unlock()
	ch, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if errno == 0 {
		n.created(name, false, true)
	}
	return ch, errno
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.pf.mu.Lock()
	defer n.pf.mu.Unlock()
	ch, errno := n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
	if errno == 0 {
		n.created(name, false, false)
	}
	return ch, errno
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	n.pf.mu.Lock()
	defer n.pf.mu.Unlock()
	ch, errno := n.LoopbackNode.Symlink(ctx, target, name, out)
	if errno == 0 {
		n.created(name, false, false)
	}
	return ch, errno
}

func (n *node) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if t, ok := target.(*node); ok {
		target = t.LoopbackNode
	}
	n.pf.mu.Lock()
	defer n.pf.mu.Unlock()
	ch, errno := n.LoopbackNode.Link(ctx, target, name, out)
	if errno == 0 {
		n.created(name, false, false)
	}
	return ch, errno
}

// remove records the removal of name from n and performs it with rm.
func (n *node) remove(name string, rm func() syscall.Errno) syscall.Errno {
	f := n.pf
	f.mu.Lock()
	defer f.mu.Unlock()
	m := &metaOp{kind: metaRemove, dir: n.backing(), path: n.child(name)}
	if err := f.stashEntry(m, m.path); err != nil {
		return gofs.ToErrno(err)
	}
	if errno := rm(); errno != 0 {
		if m.stash != "" {
			os.Remove(m.stash)
		}
		return errno
	}
	f.meta = append(f.meta, m)
	f.stats.Removes++
	return 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.remove(name, func() syscall.Errno { return n.LoopbackNode.Unlink(ctx, name) })
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.remove(name, func() syscall.Errno { return n.LoopbackNode.Rmdir(ctx, name) })
}

// Rename is recorded as one change, made durable by an fsync of the new
// parent. RENAME_EXCHANGE is refused (the model cannot undo it).
func (n *node) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	if flags&unix.RENAME_EXCHANGE != 0 {
		n.pf.mu.Lock()
		n.pf.stats.Unsupported++
		n.pf.mu.Unlock()
		return syscall.EINVAL
	}
	f := n.pf
	f.mu.Lock()
	defer f.mu.Unlock()
	m := &metaOp{kind: metaRename, dir: np.backing(), path: np.child(newName), from: n.child(name)}
	if exists(m.path) {
		m.exists = true
		if err := f.stashEntry(m, m.path); err != nil {
			return gofs.ToErrno(err)
		}
	}
	if errno := n.LoopbackNode.Rename(ctx, name, np.LoopbackNode, newName, flags); errno != 0 {
		if m.stash != "" {
			os.Remove(m.stash)
		}
		return errno
	}
	f.meta = append(f.meta, m)
	f.stats.Renames++
	return 0
}

func (n *node) Allocate(context.Context, gofs.FileHandle, uint64, uint64, uint32) syscall.Errno {
	return n.unsupported()
}

func (n *node) CopyFileRange(context.Context, gofs.FileHandle, uint64, *gofs.Inode, gofs.FileHandle, uint64, uint64, uint64) (uint32, syscall.Errno) {
	return 0, n.unsupported()
}

func (n *node) unsupported() syscall.Errno {
	n.pf.mu.Lock()
	n.pf.stats.Unsupported++
	n.pf.mu.Unlock()
	return syscall.EOPNOTSUPP
}

// file is an open file whose writes, size changes and syncs are recorded.
type file struct {
	*gofs.LoopbackFile
	fd int
	pf *FS
	n  *node
}

var (
	_ gofs.FileWriter    = (*file)(nil)
	_ gofs.FileFsyncer   = (*file)(nil)
	_ gofs.FileSetattrer = (*file)(nil)
	_ gofs.FileAllocater = (*file)(nil)
)

// PassthroughFd refuses FUSE passthrough: with it the kernel would read
// and write the backing file itself, and the writes would go unrecorded.
func (f *file) PassthroughFd() (int, bool) { return -1, false }

func (f *file) Write(_ context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, err := f.pf.write(f.fd, data, off)
	return uint32(n), gofs.ToErrno(err)
}

// Fsync makes the file's contents durable; the backing file is not synced
// (the machine never loses power: the model does).
func (f *file) Fsync(ctx context.Context, _ uint32) syscall.Errno {
	return gofs.ToErrno(f.pf.syncFile(f.fd, f.n.backing(), caller(ctx)))
}

func (f *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if size, ok := in.GetSize(); ok {
		if err := f.pf.truncate(f.fd, int64(size)); err != nil {
			return gofs.ToErrno(err)
		}
		in.Valid &^= fuse.FATTR_SIZE
	}
	return f.LoopbackFile.Setattr(ctx, in, out)
}

func (f *file) Allocate(context.Context, uint64, uint64, uint32) syscall.Errno {
	f.pf.mu.Lock()
	f.pf.stats.Unsupported++
	f.pf.mu.Unlock()
	return syscall.EOPNOTSUPP
}

// dir is an open directory; its fsync makes its entry changes durable.
type dir struct {
	h gofs.FileHandle
	n *node
}

var (
	_ gofs.FileReaddirenter = (*dir)(nil)
	_ gofs.FileSeekdirer    = (*dir)(nil)
	_ gofs.FileReleasedirer = (*dir)(nil)
	_ gofs.FileFsyncdirer   = (*dir)(nil)
)

func (d *dir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return d.h.(gofs.FileReaddirenter).Readdirent(ctx)
}

func (d *dir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := d.h.(gofs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return 0
}

func (d *dir) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := d.h.(gofs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
	}
}

func (d *dir) Fsyncdir(ctx context.Context, _ uint32) syscall.Errno {
	return d.n.pf.syncDir(d.n.backing(), caller(ctx))
}

// caller is the thread that made the request (0 if unknown).
func caller(ctx context.Context) uint32 {
	if c, ok := ctx.(*fuse.Context); ok {
		return c.Caller.Pid
	}
	return 0
}
