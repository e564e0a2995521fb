package dhcp

// Option codes used by the server (RFC 2132, RFC 3397).
const (
	optPad          = 0
	optSubnetMask   = 1
	optRouter       = 3
	optDNS          = 6
	optRequestedIP  = 50
	optLeaseTime    = 51
	optMessageType  = 53
	optServerID     = 54
	optMessage      = 56
	optTFTPServer   = 66
	optBootFile     = 67
	optDomainSearch = 119
	optEnd          = 255
)

// DHCP message types (option 53).
const (
	typeDiscover = 1
	typeOffer    = 2
	typeRequest  = 3
	typeAck      = 5
	typeNak      = 6
)

// nakMessage is slirp's option 56 text in a NAK.
const nakMessage = "requested address not available"

// splitOption returns code with data, cut into as many instances as needed to keep each at
// most 255 bytes; a receiver concatenates them (RFC 3396), which RFC 3397 relies on for long
// search lists.
func splitOption(code uint8, data []byte) []Option {
	var opts []Option
	for len(data) > 255 {
		opts = append(opts, Option{Code: code, Data: data[:255:255]})
		data = data[255:]
	}
	return append(opts, Option{Code: code, Data: data})
}
