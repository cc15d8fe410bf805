package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/store"
)

func serveCmd() *cobra.Command {
	cmd := command("serve [flags]",
		"run the registry daemon on a Unix socket",
		`Runs the registry on the data directory and serves it on a Unix socket
(R30): the socket is created 0600 (0660 with --socket-group) in a directory
that must exist (R35); another daemon answering on it is refused, a stale
socket file is removed. SIGINT or SIGTERM shut it down cleanly (in-flight
calls finish, sessions end without owner deaths, exit 0). Logs go to stderr.

With --fleet URL --device ID it joins a fleet over NATS JetStream (R53):
desired config from the KV bucket sysreg_desired goes into the fleet layer,
the effective view goes to sysreg_reported. It never waits for NATS: the
daemon serves at once and keeps its last fleet config while offline.`, nil)
	fs := cmd.Flags()
	// The limits' defaults are store.ServerOptions' own.
	dataDir := dataDirFlag(fs, "data directory (journal.db lives here); appliances: /var/lib/sysreg")
	socket := fs.String("socket", os.Getenv("SYSREG_SOCKET"), "Unix socket path ($SYSREG_SOCKET; default: sysregd.sock in the data dir; appliances: /run/sysreg.sock)")
	group := fs.String("socket-group", "", "group allowed to use the socket (mode 0660); default: owner only (0600)")
	logLevel := fs.String("log-level", "info", "log level: trace, debug, info, warn, error")
	logJSON := fs.Bool("log-json", false, "log as JSON")
	noSync := fs.Bool("no-sync", false, "UNSAFE: skip fsync (tests and benchmarks only)")
	maxFrame := fs.Int("max-frame", store.DefaultMaxFrame, "largest protocol frame in bytes")
	maxOwners := fs.Int("max-owners", store.DefaultMaxOwners, "owner sessions per connection")
	maxSubs := fs.Int("max-subscriptions", store.DefaultMaxSubscriptions, "subscriptions per connection")
	maxKeys := fs.Int("max-keys", store.DefaultMaxKeysPerOwner, "keys one remote owner may hold")
	maxInFlight := fs.Int("max-in-flight", store.DefaultMaxInFlight, "requests of one connection waiting for their reply")
	writeTimeout := durationFlag(fs, "write-timeout", store.DefaultWriteTimeout, "disconnect a client that does not read for this long")
	metricsAddr := fs.String("metrics", "", "serve Prometheus metrics on http://`ADDR`/metrics (host:port; off by default, R50)")
	shutdownTimeout := durationFlag(fs, "shutdown-timeout", 10*time.Second, "how long shutdown waits for in-flight calls")
	fleetURL := fs.String("fleet", "", "join a fleet over NATS JetStream at `URL` (nats://host:4222, comma separated for several; R53); needs --device")
	device := fs.String("device", "", "this device's `ID` in the fleet (\"all\" is reserved)")
	fleetInterval := durationFlag(fs, "fleet-interval", time.Second, "write the reported state at most once per changed scope per this interval")
	fleetCreds := fs.String("fleet-creds", "", "NATS credentials `file` (JWT and seed) for the fleet")
	defaultsDir := fs.String("defaults", "", "read the default config layer from the *.json files of this `directory` (R40); SIGHUP reloads them")
	feedRetention := fs.Int("feed-retention", store.DefaultFeedRetention, "how many of the newest config changes 'sysregd changes --from' can resume from, across checkpoints and restarts (R47); 0: none beyond the last checkpoint")
	grace := durationFlag(fs, "grace", 0, "keep the keys of a client whose connection drops for this long (at most 1h); the same owner name and uid attaching within it takes them over unchanged (R48)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := noArgs(cmd, args); err != nil {
			return err
		}
		if *grace < 0 || *grace > core.MaxGrace {
			return usagef("serve: --grace %v: want 0 to %v", *grace, core.MaxGrace)
		}
		if *feedRetention < 0 {
			return usagef("serve: --feed-retention %d: want 0 (no history beyond the last checkpoint) or more", *feedRetention)
		}
		retention := *feedRetention // store.Options' 0 is the default, its negative is none
		if retention == 0 {
			retention = -1
		}
		var fleet *store.FleetOptions
		switch {
		case *fleetURL != "" && *device == "":
			return usagef("serve: --fleet needs --device ID")
		case *fleetURL == "" && (*device != "" || *fleetCreds != "" || cmd.Flags().Changed("fleet-interval")):
			return usagef("serve: --device, --fleet-interval and --fleet-creds need --fleet URL")
		case *fleetInterval <= 0:
			return usagef("serve: --fleet-interval must be positive")
		case *fleetURL != "":
			fleet = &store.FleetOptions{URL: *fleetURL, Device: *device, Interval: *fleetInterval, CredsFile: *fleetCreds}
		}
		return serve(cmd.Context(), cmd.ErrOrStderr(), serveConfig{
			dataDir: *dataDir, socket: *socket, group: *group, logLevel: *logLevel, logJSON: *logJSON,
			noSync: *noSync, feedRetention: retention, defaults: *defaultsDir, shutdownTimeout: *shutdownTimeout, metrics: *metricsAddr, fleet: fleet,
			server: store.ServerOptions{
				MaxFrame:         *maxFrame,
				MaxOwners:        *maxOwners,
				MaxSubscriptions: *maxSubs,
				MaxKeysPerOwner:  *maxKeys,
				MaxInFlight:      *maxInFlight,
				WriteTimeout:     *writeTimeout,
				Grace:            *grace,
			},
		})
	}
	return cmd
}

// serveConfig is what serve's flags say.
type serveConfig struct {
	dataDir, socket, group, logLevel string
	metrics                          string // address of /metrics, "" for none
	defaults                         string // defaults directory (R40), "" for none
	logJSON, noSync                  bool
	feedRetention                    int // store.Options.FeedRetention
	shutdownTimeout                  time.Duration
	server                           store.ServerOptions // without Logger
	fleet                            *store.FleetOptions // nil: no fleet
}

// serve runs the daemon until ctx ends.
func serve(ctx context.Context, stderr io.Writer, cfg serveConfig) error {
	if cfg.socket == "" {
		cfg.socket = filepath.Join(cfg.dataDir, SocketName)
	}
	level := hclog.LevelFromString(cfg.logLevel)
	if level == hclog.NoLevel {
		return usagef("serve: unknown log level %q", cfg.logLevel)
	}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:       "sysregd",
		Level:      level,
		Output:     stderr,
		JSONFormat: cfg.logJSON,
	})

	// The socket's directory must exist (the data directory, which Open
	// creates, excepted): creating it would choose its owner and mode for
	// the operator, and 0700 would defeat --socket-group (R35).
	if dir := filepath.Dir(cfg.socket); dir != filepath.Clean(cfg.dataDir) {
		if fi, err := os.Stat(dir); err != nil {
			return fmt.Errorf("serve: socket directory %s: %w (create it first: sysregd does not, R35)", dir, err)
		} else if !fi.IsDir() {
			return fmt.Errorf("serve: socket directory %s is not a directory", dir)
		}
	}
	noHeapProfile() // see trim.go
	st, err := store.Open(cfg.dataDir, store.Options{Logger: logger.Named("store"), NoSync: cfg.noSync, FeedRetention: cfg.feedRetention, Fleet: cfg.fleet, DefaultsDir: cfg.defaults})
	if err != nil {
		return err
	}
	defer st.Close()
	ln, err := listen(cfg.socket, cfg.group)
	if err != nil {
		return err
	}
	sopts := cfg.server
	sopts.Logger = logger.Named("server")
	srv := store.NewServer(st, sopts)
	if cfg.metrics != "" {
		addr, stop, err := serveMetrics(cfg.metrics, newCollector(st, srv), logger.Named("metrics"))
		if err != nil {
			ln.Close()
			return fmt.Errorf("serve: --metrics: %w", err)
		}
		defer stop()
		logger.Info("metrics listening", "addr", addr.String(), "path", "/metrics")
	}
	// SIGHUP reloads the defaults (R40). Caught before the socket serves,
	// so a reload asked for as soon as the daemon answers never kills it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	rep := st.Recovery()
	// The start line says how the previous run ended (R51): "unclean"
	// means a crash, kill -9 or power loss, and what recovery did about it.
	// It is written before the first request is served, so whoever got an
	// answer from the daemon finds it in the log.
	logger.Info("listening", "socket", cfg.socket, "data_dir", cfg.dataDir, "previous_run", st.PreviousRun(),
		"records", rep.Records, "keys", rep.Keys, "elapsed", rep.Elapsed)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	sdNotify(logger, "READY=1\nSTATUS=listening on "+cfg.socket)
	// Recovery's garbage (decoded records, replaced nodes) is several
	// times the registry it leaves, and starting up mapped most of the
	// executable; an appliance should not keep either as resident memory
	// (issue #14's idle RSS; see trim.go). Given back once start-up is
	// over, while clients are already served, and again whenever the
	// daemon goes quiet after a burst of work.
	stopTrim, trimDone := make(chan struct{}), make(chan struct{})
	go idleTrim(stopTrim, trimDone, trimTick, trimMemory)
	defer func() {
		close(stopTrim)
		<-trimDone
	}()

	for running := true; running; {
		select {
		case <-hup:
			reloadDefaults(ctx, st, logger)
		case <-ctx.Done():
			logger.Info("shutting down", "reason", "signal")
			running = false
		case err := <-served:
			// The listener failed: shut down what is there and report it.
			logger.Error("accept failed", "error", err)
			sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
			srv.Shutdown(sctx)
			cancel()
			ln.Close() // Serve no longer tracks it; this unlinks the socket
			return fmt.Errorf("serve: %w", err)
		}
	}
	sdNotify(logger, "STOPPING=1")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("shutdown did not finish in time; connections closed", "error", err)
	}
	<-served
	// Shutdown closed the listener, which unlinked the socket at once.
	// Removing the path again now, after a shutdown that may have taken
	// seconds, could remove the socket of a new daemon started meanwhile.
	ln.Close()
	if err := st.Close(); err != nil {
		return err
	}
	logger.Info("stopped")
	return nil
}

// reloadDefaults is SIGHUP (R40): it reads the defaults directory again
// and logs the outcome; the store logs a reload that worked. A malformed
// file keeps the previous defaults, and the error names it with
// file:line:col.
func reloadDefaults(ctx context.Context, st *store.Store, logger hclog.Logger) {
	err := st.ReloadDefaults(ctx)
	var de *store.DefaultsError
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNoDefaults):
		logger.Warn("SIGHUP ignored: no defaults directory (serve --defaults DIR)")
	case errors.As(err, &de):
		logger.Error("defaults reload failed; previous defaults kept", "file", de.Path, "line", de.Line, "column", de.Column, "error", err)
	default:
		logger.Error("defaults reload failed; previous defaults kept", "error", err)
	}
}

// listen creates the Unix socket: it refuses when another daemon answers on
// path, removes a stale socket file, and creates the socket 0600 (0660 and
// the group's, with group) — under a umask, so it never exists with wider
// permissions (R30, R35).
func listen(path, group string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("serve: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("serve: another daemon answers on %s", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("serve: remove stale socket: %w", err)
		}
	}
	mode := os.FileMode(0o600)
	gid := -1
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			return nil, err
		}
		mode, gid = 0o660, g
	}
	old := syscall.Umask(0o777 &^ int(mode))
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("serve: listen: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("serve: socket group: %w", err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func lookupGroup(name string) (int, error) {
	if id, err := strconv.Atoi(name); err == nil {
		return id, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, usagef("serve: --socket-group: %v", err)
	}
	return strconv.Atoi(g.Gid)
}

// sdNotify implements systemd's Type=notify protocol: a datagram to
// $NOTIFY_SOCKET, if set ("@" names an abstract socket).
func sdNotify(logger hclog.Logger, state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:]
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err == nil {
		_, err = c.Write([]byte(state))
		c.Close()
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		logger.Warn("systemd notify failed", "error", err)
	}
}
