//go:build !linux

package journal

// dropCache does nothing here: see cache_linux.go.
func (j *Journal) dropCache() {}
