package mesh

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestWANLimit(t *testing.T) {
	tests := []struct {
		fixed, live, want int
	}{
		{0, 1, 32}, // alone: the whole site's share
		{0, 2, 16},
		{0, 5, 7},
		{0, 20, 4}, // never below minWANRequests
		{0, 50, 4},
		{3, 1, 3}, // a configured limit wins
		{3, 20, 3},
	}
	for _, tt := range tests {
		l := newWANLimiter(tt.fixed, func() int { return tt.live })
		if got := l.limit(); got != tt.want {
			t.Errorf("fixed %d, %d live: limit %d, want %d", tt.fixed, tt.live, got, tt.want)
		}
	}
}

func TestWANLimiterWaits(t *testing.T) {
	l := newWANLimiter(2, func() int { return 1 })
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
