package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/ferryhq/ferry/internal/pipeline"
)

// inputTypos returns a warning for each INPUT_* variable in environ that names no input of
// the action (INPUT_DESTINATON, INPUT_APP_ID), suggesting the closest input by edit
// distance. Such a variable is otherwise silently ignored and its default used.
func inputTypos(environ []string) []string {
	known := make([]string, len(pipeline.Inputs))
	for i, in := range pipeline.Inputs {
		known[i] = in.Name
	}
	var warns []string
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		name, ok := strings.CutPrefix(k, "INPUT_")
		if !ok || name == "" {
			continue
		}
		lower := strings.ToLower(name)
		if isInput(lower) {
			continue
		}
		msg := fmt.Sprintf("%s is not an input of this action and is ignored", k)
		if best := closest(strings.ReplaceAll(lower, "_", "-"), known); best != "" {
			msg += fmt.Sprintf("; did you mean %s (INPUT_%s)?", best, strings.ToUpper(best))
		} else {
			msg += "; inputs are " + strings.Join(known, ", ")
		}
		if v == "" {
			msg += " (it is empty)"
		}
		warns = append(warns, msg)
	}
	sort.Strings(warns)
	return warns
}

func isInput(name string) bool {
	for _, in := range pipeline.Inputs {
		if in.Name == name {
			return true
		}
	}
	return false
}

// closest returns the name in names nearest to s, when it is near enough to be a typo (at
// most a third of its letters differ), else "".
func closest(s string, names []string) string {
	best, bestD := "", len(s)/3+1
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
