//go:build !linux

package main

// releaseImage is a no-op outside Linux (see trim_linux.go).
func releaseImage() {}
