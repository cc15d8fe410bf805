package core

// Hooks for the external tests (package core_test) of the optimistic state
// update (optimistic.go).

// SetBeforeInstall makes f run in every state Update of r between its
// build outside the write lock and its install under it (nil: nothing).
// f may call r's methods, another Update included (which runs f again).
// Call it only while no Update of r runs.
func SetBeforeInstall(r *Registry, f func()) { r.beforeInstall = f }

// OptimisticMisses returns how many optimistic state updates of r found
// their scope changed at install and were done again under the lock.
func OptimisticMisses(r *Registry) uint64 { return r.stats.optimisticMisses.Load() }
