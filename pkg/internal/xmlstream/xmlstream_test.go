package xmlstream

import (
	"encoding/xml"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// small are limits small enough to pass in a test: text 100 bytes,
// <description> 1000, markup 200, depth 8.
var small = Limits{Text: map[string]int{"description": 1000}, DefaultText: 100, Markup: 200, Depth: 8}

// readAll reads every token, reading the text of <title> and <description>
// with Text and skipping <skipme> with Skip, as the decoders do.
func readAll(r *Reader) (texts []string, err error) {
	for {
		tok, err := r.Token()
		if err == io.EOF {
			return texts, nil
		}
		if err != nil {
			return texts, err
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "title", "description":
				s, err := r.Text()
				if err != nil {
					return texts, err
				}
				texts = append(texts, s)
			case "skipme":
				if err := r.Skip(); err != nil {
					return texts, err
				}
			}
		}
	}
}

func TestLimits(t *testing.T) {
	x := strings.Repeat
	for _, tc := range []struct {
		name string
		doc  string
		want string // the error, "" for none
		text []string
	}{
		{"text at the limit", "<u><title>" + x("t", 100) + "</title></u>", "", []string{x("t", 100)}},
		{"text one byte over", "<u><title>" + x("t", 101) + "</title></u>", "x: line 1: <title> longer than 100 bytes", nil},
		{"description at its own limit", "<u>\n<description>" + x("d", 1000) + "</description></u>", "", []string{x("d", 1000)}},
		{"description over, named with its line", "<u>\n\n<description>\n" + x("d", 1000) + "</description></u>", "x: line 3: <description> longer than 1000 bytes", nil},
		{"skipped text is held to its limit", "<u><skipme>" + x("s", 101) + "</skipme></u>", "x: line 1: <skipme> longer than 100 bytes", nil},
		{"text in runs between comments, over together", "<u><title>" + x("t", 60) + "<!---->" + x("t", 60) + "</title></u>", "x: line 1: <title> longer than 100 bytes", nil},
		{"text in runs between comments, under together", "<u><title>" + x("t", 50) + "<!---->" + x("t", 50) + "</title></u>", "", []string{x("t", 100)}},
		{"CDATA over", "<u><title><![CDATA[" + x("c", 101) + "]]></title></u>", "x: line 1: <title> longer than 100 bytes", nil},
		{"CDATA at the limit", "<u><title><![CDATA[" + x("c", 100) + "]]></title></u>", "", []string{x("c", 100)}},
		{"entities count as written", "<u><title>" + x("&amp;", 21) + "</title></u>", "x: line 1: <title> longer than 100 bytes", nil},
		{"whitespace between elements", "<u>" + x(" ", 101) + "<title/></u>", "x: line 1: <u> longer than 100 bytes", nil},
		{"long attribute", "<u>\n<p name=\"" + x("a", 200) + "\"/></u>", "x: line 2: tag <p> in <u> longer than 200 bytes", nil},
		{"many attributes", "<u><p" + x(" a=\"1\"", 32) + "/></u>", "", nil},
		{"too many attributes", "<u><p" + x(" a=\"1\"", 33) + "/></u>", "x: line 1: tag <p> in <u> longer than 200 bytes", nil},
		{"long element name", "<u><" + x("n", 300) + "/></u>", "x: line 1: tag <" + x("n", 64) + "> in <u> longer than 200 bytes", nil},
		{"long end tag", "<u></u" + x(" ", 300) + ">", "x: line 1: end tag in <u> longer than 200 bytes", nil},
		{"long comment", "<u><!--" + x("c", 300) + "--></u>", "x: line 1: comment in <u> longer than 200 bytes", nil},
		{"long comment in the prolog", "<!--" + x("c", 300) + "--><u/>", "x: line 1: comment in the prolog longer than 200 bytes", nil},
		{"long processing instruction", "<?pi " + x("c", 300) + "?><u/>", "x: line 1: processing instruction in the prolog longer than 200 bytes", nil},
		{"long doctype", "<!DOCTYPE u [" + x(" ", 300) + "]><u/>", "x: line 1: declaration in the prolog longer than 200 bytes", nil},
		{"text in the prolog", x(" ", 101) + "<u/>", "x: line 1: text in the prolog longer than 100 bytes", nil},
		{"nesting at the limit", x("<a>", 8) + x("</a>", 8), "", nil},
		{"nesting over", "\n" + x("<a>", 9) + x("</a>", 9), "x: line 2: elements nested deeper than 8", nil},
		{"nested text is skipped, not joined", "<u><title>a<b>" + x("b", 100) + "</b>c</title></u>", "", []string{"ac"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewLimits(strings.NewReader(tc.doc), "x", small)
			texts, err := readAll(r)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("err = %v, want none", err)
				}
				if strings.Join(texts, "|") != strings.Join(tc.text, "|") {
					t.Fatalf("texts %q, want %q", texts, tc.text)
				}
				return
			}
			if err == nil || err.Error() != tc.want {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if !errors.Is(err, ErrTooLong) {
				t.Errorf("err %v does not wrap ErrTooLong", err)
			}
			if _, again := r.Token(); again != err {
				t.Errorf("next Token: %v, want the same error again", again)
			}
		})
	}
}

// endless is an io.Reader of head, then fill for ever: a text run of any
// length, made as it is read.
type endless struct {
	head string
	fill byte
	read int64
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.head)
	e.head = e.head[n:]
	for i := n; i < len(p); i++ {
		p[i] = e.fill
	}
	e.read += int64(len(p))
	return len(p), nil
}

// TestEndlessTokenNotBuffered: a text run, an attribute, a comment or a
// nesting with no end is stopped at its limit with DefaultLimits, reading
// and allocating only about that much: the reader never holds a token
// whole. (On main before this, a 400 MB <description> took 1.1 GB.)
func TestEndlessTokenNotBuffered(t *testing.T) {
	for _, tc := range []struct {
		name, head string
		fill       byte
		want       string
	}{
		{"description, skipped", "<updates>\n<update>\n<skipme><description>", 'A', "x: line 3: <description> longer than 1 MiB"},
		{"description, read", "<updates>\n<update>\n<description>", 'A', "x: line 3: <description> longer than 1 MiB"},
		{"title", "<updates><update><title>", 'A', "x: line 1: <title> longer than 64 KiB"},
		{"attribute", "<updates><update><package name=\"", 'A', "x: line 1: tag <package> in <update> longer than 64 KiB"},
		{"comment", "<updates><!--", 'A', "x: line 1: comment in <updates> longer than 64 KiB"},
		{"newlines", "<updates><description>", '\n', "x: line 1: <description> longer than 1 MiB"},
		{"nesting", "", '<', "x: line 1: tag in the prolog longer than 64 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &endless{head: tc.head, fill: tc.fill}
			if tc.name == "nesting" {
				src = &endless{head: strings.Repeat("<a>", 100)}
				tc.want = "x: line 1: elements nested deeper than 64"
			}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := readAll(New(src, "x"))
			runtime.ReadMemStats(&after)
			if err == nil || err.Error() != tc.want || !errors.Is(err, ErrTooLong) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if src.read > 2<<20 {
				t.Errorf("read %d bytes before refusing, want about the limit", src.read)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
				t.Errorf("allocated %d KiB to refuse it, want about the limit", alloc>>10)
			}
		})
	}
}
