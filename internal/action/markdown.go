package action

import "github.com/gantry-dev/gantry/internal/markdown"

// Escape is markdown.Escape, for commands writing summaries.
func Escape(s string) string { return markdown.Escape(s) }

// Code is markdown.Code, for commands writing summaries.
func Code(s string) string { return markdown.Code(s) }

// Table is markdown.Table, for commands writing summaries.
func Table(header []string, rows [][]string) string { return markdown.Table(header, rows) }
