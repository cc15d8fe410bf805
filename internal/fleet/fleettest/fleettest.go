// Package fleettest provides what the fleet bridge's tests and benchmarks
// need: an in-process NATS server with JetStream (Server) and a Target
// backed by a plain core.Registry whose fleet layer "survives" restarts in a
// Disk (Target), for use until a test wants a real store.
//
// # Concurrency
//
// Server's and Target's methods are safe for concurrent use. A Server runs
// the nats-server goroutines until Stop; a Target runs its registry's
// notifier until Close.
package fleettest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/sysreg/sysreg/core"
	"github.com/sysreg/sysreg/internal/fleet"
)

// Server is a NATS server with JetStream, listening on a random loopback
// port, its JetStream files in a directory of the caller's.
type Server struct {
	dir  string
	mu   sync.Mutex // guards port and srv
	port int
	srv  *server.Server
}

// NewServer starts a server with its JetStream store in dir.
func NewServer(dir string) (*Server, error) {
	s := &Server{dir: dir, port: -1}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Start starts the server again after Stop, on the same port and with the
// same JetStream directory (a restart). It is a no-op while running.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	srv, err := server.NewServer(&server.Options{
		Host:      "127.0.0.1",
		Port:      s.port,
		JetStream: true,
		StoreDir:  s.dir,
		NoLog:     true,
		NoSigs:    true,
		// A small server: the tests hold little data.
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
	})
	if err != nil {
		return fmt.Errorf("fleettest: new server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return errors.New("fleettest: server not ready")
	}
	if s.port < 0 {
		_, p, err := net.SplitHostPort(srv.Addr().String())
		if err == nil {
			s.port, err = strconv.Atoi(p)
		}
		if err != nil {
			srv.Shutdown()
			srv.WaitForShutdown()
			return fmt.Errorf("fleettest: server address: %w", err)
		}
	}
	s.srv = srv
	return nil
}

// URL returns the client URL, valid across restarts.
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return "nats://127.0.0.1:" + strconv.Itoa(s.port)
}

// Stop shuts the server down and waits for it. Idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Disk is what a Target keeps across its restarts, as a journal would: the
// fleet layer and the revision applied with it.
type Disk struct {
	mu     sync.Mutex // guards the fields below
	rev    uint64
	scopes map[core.Scope]core.Values
}

// Target is a fleet.Target on a core.Registry in memory: the fleet layer is
// the config written by the owner "fleet", replaced scope by scope in one
// Commit per ApplyFleet, and copied to a Disk that a new Target on the same
// Disk starts from (a reboot). It records every applied update.
type Target struct {
	Reg   *core.Registry
	disk  *Disk
	owner *core.Owner

	mu      sync.Mutex // guards applied
	applied [][]fleet.ScopeValues
}

var _ fleet.Target = (*Target)(nil)

// NewTarget returns a target that starts from disk (nil: an empty one).
func NewTarget(disk *Disk) (*Target, error) {
	if disk == nil {
		disk = &Disk{}
	}
	reg := core.New(core.Options{})
	o, err := reg.Owner(context.Background(), "fleet", core.OwnerOptions{KeepConfig: true})
	if err != nil {
		reg.Close()
		return nil, err
	}
	disk.mu.Lock()
	var ops []core.Op
	for sc, vals := range disk.scopes {
		ops = append(ops, core.Put(sc, vals))
	}
	disk.mu.Unlock()
	if err := o.Commit(context.Background(), ops...); err != nil {
		reg.Close()
		return nil, err
	}
	return &Target{Reg: reg, disk: disk, owner: o}, nil
}

// Disk returns the target's disk, for a restart.
func (t *Target) Disk() *Disk { return t.disk }

// Close closes the registry.
func (t *Target) Close() error { return t.Reg.Close() }

// Applied returns every update ApplyFleet applied, in order.
func (t *Target) Applied() [][]fleet.ScopeValues {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([][]fleet.ScopeValues(nil), t.applied...)
}

// Subscribe implements fleet.Target.
func (t *Target) Subscribe(ctx context.Context, opts core.SubscribeOptions) (fleet.Subscription, error) {
	s, err := t.Reg.Subscribe(ctx, opts)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// FleetState implements fleet.Target.
func (t *Target) FleetState(context.Context) (fleet.State, error) {
	t.disk.mu.Lock()
	defer t.disk.mu.Unlock()
	st := fleet.State{Revision: t.disk.rev}
	for sc, vals := range t.disk.scopes {
		st.Scopes = append(st.Scopes, fleet.ScopeValues{Scope: sc, Values: vals})
	}
	return st, nil
}

// ApplyFleet implements fleet.Target: one Commit that replaces each scope.
func (t *Target) ApplyFleet(ctx context.Context, rev uint64, scopes []fleet.ScopeValues) error {
	snap := t.Reg.Snapshot()
	var ops []core.Op
	for _, sv := range scopes {
		var keys []string
		for k := range snap.Values(sv.Scope) {
			keys = append(keys, k)
		}
		if len(keys) > 0 {
			ops = append(ops, core.Del(sv.Scope, keys...))
		}
		if len(sv.Values) > 0 {
			ops = append(ops, core.Put(sv.Scope, sv.Values))
		}
	}
	if err := t.owner.Commit(ctx, ops...); err != nil {
		return err
	}
	t.disk.mu.Lock()
	if t.disk.scopes == nil {
		t.disk.scopes = map[core.Scope]core.Values{}
	}
	t.disk.rev = rev
	for _, sv := range scopes {
		if len(sv.Values) == 0 {
			delete(t.disk.scopes, sv.Scope)
		} else {
			t.disk.scopes[sv.Scope] = sv.Values
		}
	}
	t.disk.mu.Unlock()
	t.mu.Lock()
	t.applied = append(t.applied, scopes)
	t.mu.Unlock()
	return nil
}
