package main

import (
	"context"
	"errors"
	"io"
)

var errTODO = errors.New("not implemented yet")

func cmdGet(ctx context.Context, args []string, stdout, stderr io.Writer) error     { return errTODO }
func cmdSet(ctx context.Context, args []string, stdout, stderr io.Writer) error     { return errTODO }
func cmdDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error  { return errTODO }
func cmdWatch(ctx context.Context, args []string, stdout, stderr io.Writer) error   { return errTODO }
func cmdStats(ctx context.Context, args []string, stdout, stderr io.Writer) error   { return errTODO }
func cmdInspect(ctx context.Context, args []string, stdout, stderr io.Writer) error { return errTODO }
func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error   { return errTODO }
func cmdEvict(ctx context.Context, args []string, stdout, stderr io.Writer) error   { return errTODO }
func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error   { return errTODO }
