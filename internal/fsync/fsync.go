// Package fsync makes directory entries durable: a file or directory just
// created survives power loss only once the directory that names it has
// been fsynced. journal (its file) and store (the data directory) share it.
package fsync

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Dir fsyncs directory dir, so that the entries created in it survive power
// loss.
func Dir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// MkdirAll creates dir with mode perm and its missing parents (also perm),
// and fsyncs the parent of every directory it created. An existing dir is
// fine; an existing file of that name is an error.
//
// An existing dir's parent is fsynced too: a process killed between
// creating dir and that fsync leaves a directory that the page cache shows
// but a power cut takes away, with everything in it (found by
// store's TestR24_PowerLossAfterKillInDirSync/data-dir). A parent this
// process may not open is left alone: making it durable was its creator's
// job.
func MkdirAll(dir string, perm os.FileMode) error {
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		if err := Dir(filepath.Dir(dir)); err != nil && !errors.Is(err, os.ErrPermission) {
			return err
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return Dir(parent)
}
