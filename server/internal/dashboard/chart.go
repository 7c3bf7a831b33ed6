package dashboard

import (
	"fmt"
	"strings"

	"github.com/rpmfleet/rpmfleet/server/internal/store"
)

// chart is the overview's exposure-over-time chart, worked out here and
// drawn by overview.html as inline SVG: numbers only reach the template,
// which escapes them like any text.
type chart struct {
	Width, Height int
	// Left, Right, Top and Bottom bound the plot area.
	Left, Right, Top, Bottom int
	Series                   []series
	// YTicks label the vertical axis; XTicks the first and last days.
	YTicks []tick
	XTicks []tick
	// Title describes the chart for screen readers.
	Title string
}

type series struct {
	// Name is the severity; Class its CSS class.
	Name, Class string
	// Points is the polyline's "x,y x,y ..." attribute.
	Points string
	Dots   []point
	Last   int
}

type point struct{ X, Y int }

type tick struct {
	X, Y  int
	Label string
}

// chartSeverities are the severities drawn, most severe first.
var chartSeverities = []string{"Critical", "Important", "Moderate", "Low"}

// newChart lays out days (oldest first) as one line per severity: how
// many devices had their worst exposure at that severity.
func newChart(days []store.ExposureDay) *chart {
	c := &chart{Width: 720, Height: 220, Left: 48, Right: 660, Top: 16, Bottom: 190}
	c.Title = fmt.Sprintf("Exposed devices by worst severity, %d days", len(days))
	most := 1
	for _, d := range days {
		for _, s := range chartSeverities {
			most = max(most, d.ExposedBySeverity[s])
		}
	}
	x := func(i int) int {
		if len(days) < 2 {
			return c.Right
		}
		return c.Left + i*(c.Right-c.Left)/(len(days)-1)
	}
	y := func(n int) int { return c.Bottom - n*(c.Bottom-c.Top)/most }
	for _, s := range chartSeverities {
		se := series{Name: s, Class: "sev-" + strings.ToLower(s)}
		var pts []string
		for i, d := range days {
			n := d.ExposedBySeverity[s]
			p := point{x(i), y(n)}
			pts = append(pts, fmt.Sprintf("%d,%d", p.X, p.Y))
			se.Dots = append(se.Dots, p)
			se.Last = n
		}
		se.Points = strings.Join(pts, " ")
		c.Series = append(c.Series, se)
	}
	for _, n := range []int{0, most / 2, most} {
		c.YTicks = append(c.YTicks, tick{X: c.Left - 6, Y: y(n), Label: fmt.Sprint(n)})
	}
	if len(days) > 0 {
		c.XTicks = append(c.XTicks, tick{X: x(0), Y: c.Bottom + 18, Label: days[0].Day.Format("2006-01-02")})
		if len(days) > 1 {
			c.XTicks = append(c.XTicks, tick{X: x(len(days) - 1), Y: c.Bottom + 18, Label: days[len(days)-1].Day.Format("2006-01-02")})
		}
	}
	return c
}
