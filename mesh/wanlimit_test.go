package mesh

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWANLimit(t *testing.T) {
	tests := []struct {
		fixed, alone, live, want int
	}{
		{0, 8, 1, 32},  // alone: the whole site's share
		{0, 64, 1, 64}, // or the node's own bound, if larger
		{0, 64, 0, 64}, // before it counts itself
		{0, 64, 2, 16}, // not alone: a share
		{0, 8, 5, 7},
		{0, 8, 20, 4}, // never below minWANRequests
		{0, 8, 50, 4},
		{3, 64, 1, 3}, // a configured limit wins
		{3, 8, 20, 3},
	}
	for _, tt := range tests {
		l := newWANLimiter(tt.fixed, tt.alone, func() int { return tt.live })
		if got := l.limit(); got != tt.want {
			t.Errorf("fixed %d, alone %d, %d live: limit %d, want %d", tt.fixed, tt.alone, tt.live, got, tt.want)
		}
	}
}

func TestWANLimiterWaits(t *testing.T) {
	l := newWANLimiter(2, 0, func() int { return 1 })
	ctx := t.Context()
	for range 2 {
		if err := l.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := l.acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("third acquire of 2 slots: %v, want it to wait until its context ends", err)
	}
	got := make(chan error, 1)
	go func() { got <- l.acquire(ctx) }()
	l.release()
	if err := <-got; err != nil {
		t.Fatalf("acquire after a release: %v", err)
	}
}
