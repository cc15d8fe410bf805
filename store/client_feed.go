package store

import (
	"context"
	"errors"
)

// Changes starts a change feed over the socket (R47). See Store.Changes.
func (c *Client) Changes(ctx context.Context, from uint64) (Feed, error) {
	return nil, errors.New("store: change feed over the socket: not yet")
}
