package impair

// HelpLines returns the lines the console's help prints (after its two heading lines),
// for wirefilter(1).
func HelpLines() []string {
	return append([]string(nil), helpLines[2:]...)
}
