package fleet

import "errors"

var (
	// ErrInvalidKey: a KV key or key token that is not in the encoding of
	// EncodeToken, or that names no valid scope (R1, R53).
	ErrInvalidKey = errors.New("fleet: invalid key")
	// ErrInvalidOptions: Options that cannot work (no URL, no device, the
	// reserved device ID "all", a negative interval…).
	ErrInvalidOptions = errors.New("fleet: invalid options")
)
