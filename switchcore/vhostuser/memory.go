package vhostuser

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrAddress is what a descriptor or ring address outside the frontend's memory gets.
var ErrAddress = errors.New("address outside the guest memory table")

// memRegion is one mapped region of guest memory.
type memRegion struct {
	Region
	mapping []byte // what mmap returned, for munmap
	host    []byte // the region's bytes: mapping from the region's offset on, Size long
	// fd is a duplicate of the region's file, kept for a hand-over (the next binary maps
	// it again: a mapping does not survive exec); closed with the mapping.
	fd int
}

// memTable is a frontend's guest memory as SET_MEM_TABLE gave it. It is replaced whole,
// never changed, so the frame path reads it without a lock of its own (the device's
// rwlock keeps it alive while a batch runs).
type memTable struct {
	regions []memRegion
}

// mapRegions maps each region's descriptor shared and read/write. The descriptors are the
// caller's to close; the table keeps duplicates (see memRegion.fd). A region whose file is shorter than it claims is refused: touching
// such a page would be a SIGBUS (the frame path also survives one: see guard).
func mapRegions(rs []Region, fds []int) (*memTable, error) {
	t := &memTable{}
	page := uint64(unix.Getpagesize())
	for i, r := range rs {
		if r.Size == 0 || r.Size > 1<<46 || r.GuestAddr+r.Size < r.GuestAddr || r.UserAddr+r.Size < r.UserAddr {
			t.unmap()
			return nil, fmt.Errorf("region %d: bad size %#x at guest %#x user %#x", i, r.Size, r.GuestAddr, r.UserAddr)
		}
		off := r.MmapOffset &^ (page - 1)
		delta := r.MmapOffset - off
		length := delta + r.Size
		if off > 1<<62 || length < r.Size {
			t.unmap()
			return nil, fmt.Errorf("region %d: bad offset %#x", i, r.MmapOffset)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fds[i], &st); err != nil {
			t.unmap()
			return nil, fmt.Errorf("region %d: fstat: %w", i, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFREG && uint64(st.Size) < off+length {
			t.unmap()
			return nil, fmt.Errorf("region %d: file of %d bytes is shorter than offset %#x + size %#x", i, st.Size, r.MmapOffset, r.Size)
		}
		m, err := unix.Mmap(fds[i], int64(off), int(length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			t.unmap()
			return nil, fmt.Errorf("region %d: mmap %#x bytes at offset %#x: %w", i, length, off, err)
		}
		fd, err := unix.FcntlInt(uintptr(fds[i]), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			unix.Munmap(m)
			t.unmap()
			return nil, fmt.Errorf("region %d: dup: %w", i, err)
		}
		t.regions = append(t.regions, memRegion{Region: r, mapping: m, host: m[delta : delta+r.Size : delta+r.Size], fd: fd})
	}
	return t, nil
}

func (t *memTable) unmap() {
	if t == nil {
		return
	}
	for _, r := range t.regions {
		unix.Munmap(r.mapping)
		unix.Close(r.fd)
	}
	t.regions = nil
}

// guest returns the n bytes at guest physical address a, or ErrAddress when they are not
// all inside one region.
func (t *memTable) guest(a uint64, n uint32) ([]byte, error) {
	for i := range t.regions {
		r := &t.regions[i]
		if a >= r.GuestAddr && a-r.GuestAddr < r.Size {
			off := a - r.GuestAddr
			if uint64(n) > r.Size-off {
				return nil, ErrAddress
			}
			return r.host[off : off+uint64(n) : off+uint64(n)], nil
		}
	}
	return nil, ErrAddress
}

// user returns the n bytes at the frontend's virtual address a (ring addresses).
func (t *memTable) user(a, n uint64) ([]byte, error) {
	for i := range t.regions {
		r := &t.regions[i]
		if a >= r.UserAddr && a-r.UserAddr < r.Size {
			off := a - r.UserAddr
			if n > r.Size-off {
				return nil, ErrAddress
			}
			return r.host[off : off+n : off+n], nil
		}
	}
	return nil, ErrAddress
}
