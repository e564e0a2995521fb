package impair

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// Each case is what Debian's wirefilter 2.3.2 showed ("loss X" then showinfo) after
// "loss 7+1N": the value set in each direction, or unchanged.
func TestParseValueAsDebian(t *testing.T) {
	const keep = "7+1N"
	cases := []struct {
		in     string
		lr, rl string
		err    error
	}{
		{in: "1e", lr: "1+0U", rl: "1+0U"},
		{in: "1e+", lr: "1+0U", rl: "1+0U"},
		{in: "1e2", lr: "100+0U", rl: "100+0U"},
		{in: "0x10", lr: "16+0U", rl: "16+0U"},
		{in: "0x1p3", lr: "8+0U", rl: "8+0U"},
		{in: "0x1.8", lr: "1.5+0U", rl: "1.5+0U"},
		{in: "0x.p1", lr: "0+0U", rl: "0+0U"},
		{in: "0x", lr: keep, rl: keep, err: ErrNoValue},
		{in: "0xg", lr: keep, rl: keep, err: ErrNoValue},
		{in: "inf", lr: "inf+0U", rl: "inf+0U"},
		{in: "infinity", lr: "inf+0U", rl: "inf+0U"},
		{in: "-inf", lr: "-inf+0U", rl: "-inf+0U"},
		{in: "in", lr: keep, rl: keep, err: ErrNoValue},
		{in: "nan", lr: "nan+0N", rl: "nan+0N"},
		{in: "nan(12)", lr: "nan+0U", rl: "nan+0U"},
		{in: "nanx", lr: "nan+0U", rl: "nan+0U"},
		{in: ".5", lr: "0.5+0U", rl: "0.5+0U"},
		{in: "5.", lr: "5+0U", rl: "5+0U"},
		{in: ".", lr: keep, rl: keep, err: ErrNoValue},
		{in: "-", lr: keep, rl: keep, err: ErrNoValue},
		{in: "e5", lr: keep, rl: keep, err: ErrNoValue},
		{in: "-3", lr: "-3+0U", rl: "-3+0U"},
		{in: "-0", lr: "-0+0U", rl: "-0+0U"},
		{in: "+5", lr: "5+0U", rl: "5+0U"},
		{in: "+-5", lr: keep, rl: keep, err: ErrNoValue},
		{in: "1e2+3", lr: "100+3U", rl: "100+3U"},
		{in: "10K+5", lr: "10+0U", rl: "10+0U"},
		{in: "100+50K", lr: "102400+51200U", rl: "102400+51200U"},
		{in: "LR10+5KN", lr: "10240+5120N", rl: keep},
		{in: "RL7", lr: keep, rl: "7+0U"},
		{in: " 5", lr: "5+0U", rl: "5+0U"},
		{in: "5 ", lr: "5+0U", rl: "5+0U"},
		{in: "LR 5", lr: "5+0U", rl: keep},
		{in: "  LR5", lr: keep, rl: keep, err: ErrNoValue},
		{in: "LR", lr: keep, rl: keep, err: ErrNoValue},
		{in: "LR+5", lr: "5+0U", rl: keep},
		{in: "LRRL5", lr: keep, rl: keep, err: ErrNoValue},
		{in: "lr5", lr: keep, rl: keep, err: ErrNoValue},
		{in: "10+ 5", lr: "10+5U", rl: "10+5U"},
		{in: "10 +5", lr: "10+0U", rl: "10+0U"},
		{in: "10+", lr: "10+0U", rl: "10+0U"},
		{in: "10++5", lr: "10+5U", rl: "10+5U"},
		{in: "5+x", lr: "5+0U", rl: "5+0U"},
		{in: "5+-2", lr: "5+-2U", rl: "5+-2U"},
		{in: "5+.5", lr: "5+0.5U", rl: "5+0.5U"},
		{in: "5+LR3", lr: "5+0U", rl: "5+0U"},
		{in: "10[0]", lr: "10+0U", rl: "10+0U"},
		{in: "10[1]", lr: keep, rl: keep, err: ErrNode},
		{in: "10[5]", lr: keep, rl: keep, err: ErrNode},
		{in: "x[5]", lr: keep, rl: keep, err: ErrNode},
		{in: "10]", lr: "1+0U", rl: "1+0U"},
		{in: "[2]", lr: keep, rl: keep, err: ErrNoValue},
		{in: "5[", lr: "5+0U", rl: "5+0U"},
		{in: "5[]", lr: "5+0U", rl: "5+0U"},
		{in: "5[0]x", lr: "5+0U", rl: "5+0U"},
		{in: "10[0", lr: "10+0U", rl: "10+0U"},
		{in: "10[1", lr: "10+0U", rl: "10+0U"},
		{in: "10[-0]", lr: "10+0U", rl: "10+0U"},
		{in: "10[0x]", lr: "10+0U", rl: "10+0U"},
		{in: "10[a]", lr: "10+0U", rl: "10+0U"},
		{in: "10[0] ", lr: "10+0U", rl: "10+0U"},
		{in: "20n[0]", lr: "20+0N", rl: "20+0N"},
		{in: "U", lr: keep, rl: keep, err: ErrNoValue},
		{in: "N", lr: keep, rl: keep, err: ErrNoValue},
		{in: "3u", lr: "3+0U", rl: "3+0U"},
		{in: "3n", lr: "3+0N", rl: "3+0N"},
		{in: "2g", lr: "2.14748e+09+0U", rl: "2.14748e+09+0U"},
		{in: "3M", lr: "3.14573e+06+0U", rl: "3.14573e+06+0U"},
		{in: "1e5K", lr: "1.024e+08+0U", rl: "1.024e+08+0U"},
		{in: "0.5+0.25M", lr: "524288+262144U", rl: "524288+262144U"},
		{in: "5k N", lr: "5+0N", rl: "5+0N"},
		{in: "1.5e1+1e1", lr: "15+10U", rl: "15+10U"},
		{in: "12345678", lr: "1.23457e+07+0U", rl: "1.23457e+07+0U"},
		{in: "0.000012345", lr: "1.2345e-05+0U", rl: "1.2345e-05+0U"},
		{in: "1e-400", lr: "0+0U", rl: "0+0U"},
		{in: "1e400", lr: "inf+0U", rl: "inf+0U"},
		{in: "1,5", lr: "1+0U", rl: "1+0U"},
		{in: "", lr: keep, rl: keep, err: ErrNoValue},
	}
	show := func(v Value) string { return FormatG(v.Value) + "+" + FormatG(v.Plus) + string("UN"[v.Alg]) }
	for _, c := range cases {
		f := New(Config{Bidirectional: true})
		if err := f.Set(Loss, "7+1N"); err != nil {
			t.Fatal(err)
		}
		err := f.Set(Loss, c.in)
		if !errors.Is(err, c.err) {
			t.Errorf("%q: error %v, want %v", c.in, err, c.err)
		}
		if lr, rl := show(f.Get(0, Loss, LR)), show(f.Get(0, Loss, RL)); lr != c.lr || rl != c.rl {
			t.Errorf("%q: L->R %s R->L %s, want %s %s", c.in, lr, rl, c.lr, c.rl)
		}
	}
}

func TestFormatG(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{{0, "0"}, {100, "100"}, {0.1, "0.1"}, {1e6, "1e+06"}, {123456, "123456"}, {1234567, "1.23457e+06"},
		{0.0001, "0.0001"}, {0.00001, "1e-05"}, {math.Inf(1), "inf"}, {math.NaN(), "nan"}, {-2.5, "-2.5"}} {
		if got := FormatG(c.v); got != c.want {
			t.Errorf("FormatG(%v) = %q, want %q", c.v, got, c.want)
		}
	}
}

// FuzzParseValue: any text parses or fails without panicking, a value is set only in the
// directions its prefix names, and ScanFloat never reads past its input.
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"10", "LR10+5KN", "RL1e3", "100+50K[0]", "10]", "[2]", "0x1.8p3", "nan(x)", " 5 ", "5+-2U", "1e", "]"} {
		f.Add(s, uint8(1))
	}
	f.Fuzz(func(t *testing.T, s string, nodes uint8) {
		n := int(nodes%8) + 1
		st, err := ParseValue(s, n)
		if err != nil {
			return
		}
		if st.Node < 0 || st.Node >= n {
			t.Fatalf("%q: node %d of %d", s, st.Node, n)
		}
		if !st.LR && !st.RL {
			t.Fatalf("%q: no direction", s)
		}
		if st.LR != st.RL && !strings.Contains(s, "LR") && !strings.Contains(s, "RL") {
			t.Fatalf("%q: one direction without a prefix", s)
		}
		_, rest, ok := ScanFloat(s)
		if ok && !strings.HasSuffix(s, rest) {
			t.Fatalf("%q: rest %q is not a suffix", s, rest)
		}
	})
}
