package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// versionInfo is what "sysregd version" prints.
type versionInfo struct {
	Module   string `json:"module"`
	Version  string `json:"version"`            // the module version, "(devel)" for a build from a checkout
	Revision string `json:"revision,omitempty"` // VCS revision, when the build recorded it
	Time     string `json:"time,omitempty"`     // VCS commit time
	Modified bool   `json:"modified,omitempty"` // built from a work tree with changes
	Go       string `json:"go"`
}

// buildVersion reads the version from the binary's build information.
// The VCS fields are there when the binary was built from a checkout
// without -buildvcs=false.
func buildVersion() versionInfo {
	v := versionInfo{Module: "github.com/sysreg/sysreg", Version: "(unknown)"}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Go = bi.GoVersion
	if bi.Main.Path != "" {
		v.Module, v.Version = bi.Main.Path, bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func versionCmd() *cobra.Command {
	var out *outputFormat
	cmd := command("version [flags]",
		"print the module version and VCS revision",
		`Prints sysregd's module version and the VCS revision it was built from, as
recorded in the binary (runtime/debug.ReadBuildInfo): one line of text by
default, JSON with -o.`,
		func(cmd *cobra.Command, args []string) error {
			if err := noArgs(cmd, args); err != nil {
				return err
			}
			v := buildVersion()
			if cmd.Flags().Changed("output") {
				return out.writeValue(cmd.OutOrStdout(), v)
			}
			rev := v.Revision
			if rev == "" {
				rev = "unknown revision"
			}
			if v.Modified {
				rev += " (modified)"
			}
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "sysregd %s %s, %s\n", v.Version, rev, v.Go)
			return err
		})
	out = outputFlag(cmd)
	return cmd
}

// manCmd writes man pages generated from the command tree (cobra/doc):
// sysregd.1 (or one command's page) to stdout, or with --dir one page per
// command.
func manCmd(root *cobra.Command) *cobra.Command {
	var dir *string
	cmd := command("man [flags] [COMMAND]",
		"print the man page, or write one page per command",
		`Prints the sysregd(1) man page (roff) on stdout, or with COMMAND that
command's page (sysregd-get(1), …), generated from the same command tree as
the help; with --dir, writes one page per command there (sysregd.1,
sysregd-get.1, …). Try 'sysregd man | man -l -'.`,
		func(cmd *cobra.Command, args []string) error {
			page := root
			if len(args) > 0 {
				var rest []string
				var err error
				if page, rest, err = root.Find(args); err != nil || len(rest) > 0 || page == root {
					return usagef("man: unknown command %q (see 'sysregd help')", args)
				}
			}
			// Every page ends with the exit status and the environment,
			// as every help does.
			var prepare func(c *cobra.Command)
			prepare = func(c *cobra.Command) {
				c.DisableAutoGenTag = true
				c.Long = strings.TrimSpace(c.Long) + "\n\n" + manSections
				for _, sub := range c.Commands() {
					prepare(sub)
				}
			}
			prepare(root)
			header := &doc.GenManHeader{Section: "1", Source: "sysreg " + buildVersion().Version, Manual: "sysreg manual"}
			if *dir == "" {
				return doc.GenMan(page, header, cmd.OutOrStdout())
			}
			if len(args) > 0 {
				return usagef("man: --dir writes every page; give no COMMAND")
			}
			if fi, err := os.Stat(*dir); err != nil || !fi.IsDir() {
				return fmt.Errorf("man: --dir %s: not a directory", filepath.Clean(*dir))
			}
			return doc.GenManTree(root, header, *dir)
		})
	dir = cmd.Flags().String("dir", "", "write one page per command into this `directory`")
	return cmd
}

// manSections is exitText and envText in the man page's markdown.
var manSections = "# EXIT STATUS\n\n" + manLines(exitText) + "\n\n# ENVIRONMENT\n\n" + manLines(envText)

// manLines drops text's heading line and keeps each other line a line.
func manLines(text string) string {
	lines := strings.Split(text, "\n")[1:]
	for i, l := range lines {
		lines[i] = strings.TrimSpace(l)
	}
	return strings.Join(lines, "  \n")
}
