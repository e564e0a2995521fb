// Package vhostuser is the backend side of the vhost-user protocol for virtio-net devices:
// QEMU's `-netdev vhost-user` and DPDK's virtio_user connect to a unix socket, hand over
// their memory table and virtqueues, and from then on frames travel through shared memory,
// with eventfds for the few notifications the rings do not suppress. A connected frontend
// is a wire.Endpoint the switch attaches as a port.
//
// The protocol's facts are those of QEMU's docs/interop/vhost-user.rst (the spec) and of
// what QEMU 7.2 and DPDK 22.11 send on this machine.
package vhostuser

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Request is a vhost-user message type, frontend to backend.
type Request uint32

// The requests a virtio-net backend meets. The numbers are the spec's.
const (
	ReqGetFeatures         Request = 1
	ReqSetFeatures         Request = 2
	ReqSetOwner            Request = 3
	ReqResetOwner          Request = 4
	ReqSetMemTable         Request = 5
	ReqSetLogBase          Request = 6
	ReqSetLogFD            Request = 7
	ReqSetVringNum         Request = 8
	ReqSetVringAddr        Request = 9
	ReqSetVringBase        Request = 10
	ReqGetVringBase        Request = 11
	ReqSetVringKick        Request = 12
	ReqSetVringCall        Request = 13
	ReqSetVringErr         Request = 14
	ReqGetProtocolFeatures Request = 15
	ReqSetProtocolFeatures Request = 16
	ReqGetQueueNum         Request = 17
	ReqSetVringEnable      Request = 18
	ReqSendRARP            Request = 19
	ReqNetSetMTU           Request = 20
	ReqSetBackendReqFD     Request = 21
	ReqIOTLBMsg            Request = 22
	ReqSetVringEndian      Request = 23
	ReqGetConfig           Request = 24
	ReqSetConfig           Request = 25
	ReqResetDevice         Request = 34
	ReqGetMaxMemSlots      Request = 36
	ReqAddMemReg           Request = 37
	ReqRemMemReg           Request = 38
	ReqSetStatus           Request = 39
	ReqGetStatus           Request = 40
)

var requestNames = map[Request]string{
	ReqGetFeatures: "GET_FEATURES", ReqSetFeatures: "SET_FEATURES", ReqSetOwner: "SET_OWNER",
	ReqResetOwner: "RESET_OWNER", ReqSetMemTable: "SET_MEM_TABLE", ReqSetLogBase: "SET_LOG_BASE",
	ReqSetLogFD: "SET_LOG_FD", ReqSetVringNum: "SET_VRING_NUM", ReqSetVringAddr: "SET_VRING_ADDR",
	ReqSetVringBase: "SET_VRING_BASE", ReqGetVringBase: "GET_VRING_BASE",
	ReqSetVringKick: "SET_VRING_KICK", ReqSetVringCall: "SET_VRING_CALL",
	ReqSetVringErr: "SET_VRING_ERR", ReqGetProtocolFeatures: "GET_PROTOCOL_FEATURES",
	ReqSetProtocolFeatures: "SET_PROTOCOL_FEATURES", ReqGetQueueNum: "GET_QUEUE_NUM",
	ReqSetVringEnable: "SET_VRING_ENABLE", ReqSendRARP: "SEND_RARP", ReqNetSetMTU: "NET_SET_MTU",
	ReqSetBackendReqFD: "SET_BACKEND_REQ_FD", ReqIOTLBMsg: "IOTLB_MSG",
	ReqSetVringEndian: "SET_VRING_ENDIAN", ReqGetConfig: "GET_CONFIG", ReqSetConfig: "SET_CONFIG",
	ReqResetDevice: "RESET_DEVICE", ReqGetMaxMemSlots: "GET_MAX_MEM_SLOTS",
	ReqAddMemReg: "ADD_MEM_REG", ReqRemMemReg: "REM_MEM_REG", ReqSetStatus: "SET_STATUS",
	ReqGetStatus: "GET_STATUS",
}

func (r Request) String() string {
	if n, ok := requestNames[r]; ok {
		return n
	}
	return fmt.Sprintf("request %d", uint32(r))
}

// Header flags: the version in the low two bits, and two flags.
const (
	flagVersion   = 0x1
	flagReply     = 1 << 2
	flagNeedReply = 1 << 3
)

// headerSize is the fixed part of every message: request, flags, payload size.
const headerSize = 12

// maxPayload bounds a message's payload. The largest a net frontend sends is GET_CONFIG's
// (12 + 256) or SET_MEM_TABLE's (8 + 8*32); anything larger is a broken or hostile peer.
const maxPayload = 4096

// maxFDs is the most descriptors one message carries (SET_MEM_TABLE: one per region).
const maxFDs = maxRegions

// maxRegions is VHOST_MEMORY_BASELINE_NREGIONS, the regions SET_MEM_TABLE may carry.
const maxRegions = 8

// Virtio and vhost feature bits (GET_FEATURES / SET_FEATURES).
const (
	FeatNetCsum          = 1 << 0  // VIRTIO_NET_F_CSUM: the device takes partial checksums
	FeatNetGuestCsum     = 1 << 1  // VIRTIO_NET_F_GUEST_CSUM
	FeatNetMTU           = 1 << 3  // VIRTIO_NET_F_MTU
	FeatNetMAC           = 1 << 5  // VIRTIO_NET_F_MAC
	FeatNetGuestTSO4     = 1 << 7  // VIRTIO_NET_F_GUEST_TSO4
	FeatNetGuestTSO6     = 1 << 8  // VIRTIO_NET_F_GUEST_TSO6
	FeatNetHostTSO4      = 1 << 11 // VIRTIO_NET_F_HOST_TSO4
	FeatNetHostTSO6      = 1 << 12 // VIRTIO_NET_F_HOST_TSO6
	FeatNetMrgRxbuf      = 1 << 15 // VIRTIO_NET_F_MRG_RXBUF: a frame may span receive buffers
	FeatNetStatus        = 1 << 16 // VIRTIO_NET_F_STATUS
	FeatNetCtrlVQ        = 1 << 17 // VIRTIO_NET_F_CTRL_VQ
	FeatNetGuestAnnounce = 1 << 21 // VIRTIO_NET_F_GUEST_ANNOUNCE
	FeatNetMQ            = 1 << 22 // VIRTIO_NET_F_MQ
	FeatNotifyOnEmpty    = 1 << 24 // VIRTIO_F_NOTIFY_ON_EMPTY
	FeatLogAll           = 1 << 26 // VHOST_F_LOG_ALL (migration dirty log)
	FeatAnyLayout        = 1 << 27 // VIRTIO_F_ANY_LAYOUT
	FeatIndirectDesc     = 1 << 28 // VIRTIO_RING_F_INDIRECT_DESC
	FeatEventIdx         = 1 << 29 // VIRTIO_RING_F_EVENT_IDX
	FeatProtocolFeatures = 1 << 30 // VHOST_USER_F_PROTOCOL_FEATURES
	FeatVersion1         = 1 << 32 // VIRTIO_F_VERSION_1
	FeatIOMMUPlatform    = 1 << 33 // VIRTIO_F_IOMMU_PLATFORM
	FeatRingPacked       = 1 << 34 // VIRTIO_F_RING_PACKED
	FeatInOrder          = 1 << 35 // VIRTIO_F_IN_ORDER
)

// Protocol feature bits (GET_PROTOCOL_FEATURES / SET_PROTOCOL_FEATURES).
const (
	ProtoMQ       = 1 << 0  // VHOST_USER_PROTOCOL_F_MQ: GET_QUEUE_NUM
	ProtoReplyAck = 1 << 3  // VHOST_USER_PROTOCOL_F_REPLY_ACK: need_reply answered
	ProtoMTU      = 1 << 4  // VHOST_USER_PROTOCOL_F_MTU: NET_SET_MTU
	ProtoConfig   = 1 << 9  // VHOST_USER_PROTOCOL_F_CONFIG: GET_CONFIG / SET_CONFIG
	ProtoStatus   = 1 << 16 // VHOST_USER_PROTOCOL_F_STATUS: SET_STATUS / GET_STATUS
)

// kickNoFD in a SET_VRING_KICK/CALL/ERR payload says no descriptor came: the ring is
// polled (kick) or never signalled (call).
const kickNoFD = 1 << 8

// Errors of message decoding; each wraps into one that names the request.
var (
	ErrShort       = errors.New("payload too short")
	ErrTooLarge    = errors.New("payload too large")
	ErrVersion     = errors.New("unsupported protocol version")
	ErrQueueIndex  = errors.New("queue index out of range")
	ErrRegionCount = errors.New("bad memory region count")
	ErrFDCount     = errors.New("wrong number of descriptors")
)

// Header is the fixed part of a message.
type Header struct {
	Request Request
	Flags   uint32
	Size    uint32
}

func decodeHeader(b []byte) (Header, error) {
	if len(b) < headerSize {
		return Header{}, ErrShort
	}
	h := Header{
		Request: Request(binary.LittleEndian.Uint32(b[0:])),
		Flags:   binary.LittleEndian.Uint32(b[4:]),
		Size:    binary.LittleEndian.Uint32(b[8:]),
	}
	if h.Flags&3 != flagVersion {
		return h, fmt.Errorf("%v: %w %d", h.Request, ErrVersion, h.Flags&3)
	}
	if h.Size > maxPayload {
		return h, fmt.Errorf("%v: %w (%d bytes)", h.Request, ErrTooLarge, h.Size)
	}
	return h, nil
}

func (h Header) needReply() bool { return h.Flags&flagNeedReply != 0 }

// VringState is the payload of SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE and
// SET_VRING_ENABLE: a queue index and a number.
type VringState struct {
	Index, Num uint32
}

// VringAddr is SET_VRING_ADDR's payload: the ring's parts as addresses in the frontend's
// own address space (translated through the memory table's userspace addresses).
type VringAddr struct {
	Index             uint32
	Flags             uint32
	Desc, Used, Avail uint64
	Log               uint64
}

// Region is one guest memory region of SET_MEM_TABLE.
type Region struct {
	GuestAddr  uint64 // guest physical address: what descriptors point at
	Size       uint64
	UserAddr   uint64 // the frontend's virtual address: what ring addresses point at
	MmapOffset uint64 // where the region starts in its descriptor's file
}

// message is one decoded request with what it carries.
type message struct {
	Header
	u64   uint64     // SET_FEATURES, SET_PROTOCOL_FEATURES, kick/call/err index word
	state VringState // the vring-state requests
	addr  VringAddr
	mem   []Region // SET_MEM_TABLE, ADD_MEM_REG / REM_MEM_REG (one)
	fds   []int
}

// decodePayload reads the payload of a request into m. It checks sizes and counts against
// what the request must carry; values (queue indexes, addresses) are checked where used.
func decodePayload(m *message, p []byte) error {
	le := binary.LittleEndian
	need := func(n int) error {
		if len(p) < n {
			return fmt.Errorf("%v: %w (%d bytes, need %d)", m.Request, ErrShort, len(p), n)
		}
		return nil
	}
	switch m.Request {
	case ReqSetFeatures, ReqSetProtocolFeatures, ReqSetVringKick, ReqSetVringCall,
		ReqSetVringErr, ReqSetLogBase, ReqNetSetMTU, ReqSetStatus:
		if err := need(8); err != nil {
			return err
		}
		m.u64 = le.Uint64(p)
	case ReqSetVringNum, ReqSetVringBase, ReqGetVringBase, ReqSetVringEnable, ReqSetVringEndian:
		if err := need(8); err != nil {
			return err
		}
		m.state = VringState{Index: le.Uint32(p), Num: le.Uint32(p[4:])}
	case ReqSetVringAddr:
		if err := need(40); err != nil {
			return err
		}
		m.addr = VringAddr{Index: le.Uint32(p), Flags: le.Uint32(p[4:]), Desc: le.Uint64(p[8:]),
			Used: le.Uint64(p[16:]), Avail: le.Uint64(p[24:]), Log: le.Uint64(p[32:])}
	case ReqSetMemTable:
		if err := need(8); err != nil {
			return err
		}
		n := le.Uint32(p)
		if n == 0 || n > maxRegions {
			return fmt.Errorf("%v: %w: %d", m.Request, ErrRegionCount, n)
		}
		if err := need(8 + 32*int(n)); err != nil {
			return err
		}
		if len(m.fds) != int(n) {
			return fmt.Errorf("%v: %w: %d for %d regions", m.Request, ErrFDCount, len(m.fds), n)
		}
		m.mem = make([]Region, n)
		for i := range m.mem {
			m.mem[i] = decodeRegion(p[8+32*i:])
		}
	case ReqAddMemReg, ReqRemMemReg:
		if err := need(8 + 32); err != nil {
			return err
		}
		m.mem = []Region{decodeRegion(p[8:])}
	}
	return nil
}

func decodeRegion(p []byte) Region {
	le := binary.LittleEndian
	return Region{GuestAddr: le.Uint64(p), Size: le.Uint64(p[8:]), UserAddr: le.Uint64(p[16:]),
		MmapOffset: le.Uint64(p[24:])}
}

// replyU64 and replyState encode the replies of the requests that answer.
func replyU64(req Request, v uint64) []byte {
	b := make([]byte, headerSize+8)
	putHeader(b, req, 8)
	binary.LittleEndian.PutUint64(b[headerSize:], v)
	return b
}

func replyState(req Request, s VringState) []byte {
	b := make([]byte, headerSize+8)
	putHeader(b, req, 8)
	binary.LittleEndian.PutUint32(b[headerSize:], s.Index)
	binary.LittleEndian.PutUint32(b[headerSize+4:], s.Num)
	return b
}

func replyBytes(req Request, p []byte) []byte {
	b := make([]byte, headerSize+len(p))
	putHeader(b, req, len(p))
	copy(b[headerSize:], p)
	return b
}

func putHeader(b []byte, req Request, size int) {
	binary.LittleEndian.PutUint32(b, uint32(req))
	binary.LittleEndian.PutUint32(b[4:], flagVersion|flagReply)
	binary.LittleEndian.PutUint32(b[8:], uint32(size))
}
