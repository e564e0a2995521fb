package dhcp

import (
	"bytes"
	"testing"
)

func TestEncodeSearchList(t *testing.T) {
	tests := []struct {
		desc    string
		names   []string
		want    []byte
		wantErr bool
	}{
		{
			desc:  "RFC 3397 §2 example with a pointer to apple.com",
			names: []string{"eng.apple.com.", "marketing.apple.com."},
			want: []byte("\x03eng\x05apple\x03com\x00" +
				"\x09marketing\xc0\x04"),
		},
		{
			desc:  "whole name repeated, case-insensitively",
			names: []string{"example.org", "Example.ORG"},
			want:  []byte("\x07example\x03org\x00\xc0\x00"),
		},
		{
			desc:  "no shared suffix",
			names: []string{"a.b", "c"},
			want:  []byte("\x01a\x01b\x00\x01c\x00"),
		},
		{desc: "empty name", names: []string{""}, wantErr: true},
		{desc: "root only", names: []string{"."}, wantErr: true},
		{desc: "empty label", names: []string{"a..b"}, wantErr: true},
		{desc: "label of 64 bytes", names: []string{string(bytes.Repeat([]byte("x"), 64)) + ".com"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			got, err := encodeSearchList(tt.names)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
