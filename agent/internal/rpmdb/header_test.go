package rpmdb

import (
	"encoding/binary"
	"strings"
	"testing"
)

// header assembles a header blob from (tag, type, offset, count) entries
// and a data store, as rpm stores one in the database.
func header(entries [][4]uint32, data string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(entries)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	for _, e := range entries {
		for _, v := range e {
			b = binary.BigEndian.AppendUint32(b, v)
		}
	}
	return append(b, data...)
}

func TestParseHeader(t *testing.T) {
	// name at 0, version at 5, release at 9, arch at 11, a pad byte,
	// epoch at 20 (aligned), label at 24: 38 bytes.
	data := "bash\x005.1\x004\x00aarch64\x00" + "\x00" + "\x00\x00\x00\x02" + "nodejs:18:1:a\x00"
	good := [][4]uint32{
		{tagName, typeString, 0, 1}, {tagVersion, typeString, 5, 1}, {tagRelease, typeString, 9, 1},
		{tagArch, typeString, 11, 1}, {tagEpoch, typeInt32, 20, 1}, {tagModularityLabel, typeString, 24, 1},
	}
	p, err := parseHeader(header(good, data))
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != "bash-2:5.1-4.aarch64" || p.Epoch != "2" || p.ModularityLabel != "nodejs:18:1:a" {
		t.Errorf("parseHeader = %+v", p)
	}
	p, err = parseHeader(header(good[:4], data))
	if err != nil || p.Epoch != "" || p.ModularityLabel != "" {
		t.Errorf("no epoch tag: %+v, %v; want epoch \"\"", p, err)
	}

	tests := []struct {
		name string
		blob []byte
		want string
	}{
		{"short", []byte{0, 0, 0}, "header is 3 bytes"},
		{"no tags", header(nil, data), "claims 0 tags"},
		{"index past end", header(good, data)[:40], "claims 6 tags and 38 data bytes in 40 bytes"},
		{"string past data", header([][4]uint32{{tagName, typeString, 42, 1}}, data), "tag 1000 at offset 42 past the 38 data bytes"},
		{"no NUL", header([][4]uint32{{tagName, typeString, 0, 1}}, "bash"), "tag 1000 at offset 0 has no terminating NUL"},
		{"name not a string", header([][4]uint32{{tagName, typeInt32, 0, 1}}, data), "tag 1000 has type 4, want string"},
		{"epoch not an int", header([][4]uint32{{tagEpoch, typeString, 0, 1}}, data), "tag 1003 has type 6 count 1, want one int32"},
		{"epoch past data", header([][4]uint32{{tagEpoch, typeInt32, 40, 1}}, data), "tag 1003 at offset 40 past the 38 data bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseHeader(tc.blob)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Add(header([][4]uint32{{tagName, typeString, 0, 1}, {tagEpoch, typeInt32, 8, 1}}, "bash\x00\x00\x00\x00\x00\x00\x00\x01"))
	f.Add([]byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 232, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, blob []byte) {
		p, err := parseHeader(blob)
		if err == nil && len(p.Name) > len(blob) {
			t.Fatalf("name longer than the blob: %q", p.Name)
		}
	})
}
