package console

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"time"
)

// bar is one bar of a chart: its value, its tooltip, and a class that
// colours it (an outcome, or "" for the series colour).
type bar struct {
	Value float64
	Title string
	Class string
}

// barChart draws bars as an inline SVG, scaled to the largest, with the
// top value written at the left and the x axis's two ends under it; every
// text in it is escaped. It needs no script, and the tooltips are the
// bars' <title>s.
func barChart(label, unit string, bars []bar, axis [2]string) template.HTML {
	const w, h, left = 600.0, 110.0, 46.0
	top := 0.0
	for _, b := range bars {
		top = max(top, b.Value)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-label="%s" preserveAspectRatio="none">`, w, h+16, html.EscapeString(label))
	fmt.Fprintf(&sb, `<text x="%g" y="%g" class="axis">%s</text><text x="%g" y="%g" class="axis" text-anchor="end">%s</text>`,
		left, h+13, html.EscapeString(axis[0]), w, h+13, html.EscapeString(axis[1]))
	fmt.Fprintf(&sb, `<text x="0" y="10" class="axis">%s</text><text x="0" y="%g" class="axis">0</text>`, html.EscapeString(axisValue(top, unit)), h)
	fmt.Fprintf(&sb, `<line x1="%g" y1="%g" x2="%g" y2="%g" class="base"/>`, left, h, w, h)
	if len(bars) > 0 {
		slot := (w - left) / float64(len(bars))
		bw := max(slot*0.8, 1)
		for i, b := range bars {
			bh := 0.0
			if top > 0 {
				bh = b.Value / top * (h - 4)
			}
			if b.Value > 0 && bh < 1.5 {
				bh = 1.5
			}
			cls := "bar"
			if b.Class != "" {
				cls += " " + b.Class
			}
			fmt.Fprintf(&sb, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" class="%s"><title>%s</title></rect>`,
				left+float64(i)*slot, h-bh, bw, bh, html.EscapeString(cls), html.EscapeString(b.Title))
		}
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String()) // every text above is escaped
}

func axisValue(v float64, unit string) string {
	switch unit {
	case "/s":
		return fmt.Sprintf("%.2f/s", v)
	case "ms":
		if v >= 10_000 {
			return fmt.Sprintf("%.0fs", v/1000)
		}
		return fmt.Sprintf("%.0fms", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

// axisTimes labels a time axis from from to to (UTC, to the minute).
func axisTimes(from, to time.Time) [2]string {
	return [2]string{from.UTC().Format("15:04 UTC"), to.UTC().Format("15:04 UTC")}
}
