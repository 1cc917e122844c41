package pipeline

import "sync"

// handoffBytes bounds the chunk bytes a run keeps for its assembly.
const handoffBytes = 4 << 20

// handoff keeps the bytes of chunks this run fetched until the assembly
// writes them, so that it need not read them back from the store and hash
// them again: the source verified them, and they never touched the disk.
// The assembly follows the fetch closely (both walk the plan in order), so a
// few MiB hold nearly every chunk; past limit, chunks are not kept, and the
// assembly reads them from the store as before.
type handoff struct {
	mu    sync.Mutex
	m     map[int][]byte // by job
	bytes int64
	limit int64
}

func newHandoff(limit int64) *handoff {
	return &handoff{m: make(map[int][]byte), limit: limit}
}

// keep holds data, job i's verified bytes, if there is room. The caller
// must not modify data afterwards.
func (h *handoff) keep(i int, data []byte) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.m[i]; ok || h.bytes+int64(len(data)) > h.limit {
		return
	}
	h.m[i] = data
	h.bytes += int64(len(data))
}

// take returns, and forgets, job i's bytes if they are held.
func (h *handoff) take(i int) ([]byte, bool) {
	if h == nil {
		return nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	data, ok := h.m[i]
	if ok {
		delete(h.m, i)
		h.bytes -= int64(len(data))
	}
	return data, ok
}
