package inject

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// checkLimits refuses, before anything starts, an environment that execve
// would refuse with E2BIG, which a shell reports as "argument list too
// long" and status 126, naming the wrong cause. Linux takes at most 32
// pages (128 KiB) for one string, NAME=VALUE, and for the arguments and
// environment together a quarter of the stack limit (ulimit -s), at least
// 128 KiB and at most 6 MiB, less a pointer per string (fs/exec.c).
func checkLimits(args, env []string, vars []Variable) error {
	perString := 32 * os.Getpagesize()
	total, longest := 0, 0
	for _, s := range args {
		total += len(s) + 1
	}
	for _, kv := range env {
		total += len(kv) + 1
		longest = max(longest, len(kv)+1)
	}
	total += (max(len(args), 1) + len(env)) * 8
	limit := argLimit()
	if total <= limit && longest <= perString {
		// What nearly every start comes to, decided without indexing the
		// hundred or more variables of a CI job's environment.
		return nil
	}
	bySize := map[string]int{}
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		bySize[name] = len(kv) + 1
	}
	for _, v := range vars {
		size, ok := bySize[v.Name]
		if ok && !v.Hidden && !v.File && size > perString {
			return fmt.Errorf("%s: %s is %d bytes (NAME=value), over the %d bytes Linux allows one environment variable, so the command cannot start; make it a memory-only file: files: {%s_FILE: %s} in that source, and have the program read the file $%s_FILE names",
				v.Pos(), v.Name, size-1, perString, v.Name, fieldForFiles(v.Field), v.Name)
		}
	}
	if total <= limit {
		return nil
	}
	var big []Variable
	for _, v := range vars {
		if _, ok := bySize[v.Name]; ok && !v.Hidden && !v.File {
			big = append(big, v)
		}
	}
	sort.SliceStable(big, func(i, j int) bool { return bySize[big[i].Name] > bySize[big[j].Name] })
	var largest []string
	for _, v := range big[:min(3, len(big))] {
		largest = append(largest, fmt.Sprintf("%s (%d bytes, %s)", v.Name, bySize[v.Name]-1, v.Pos()))
	}
	return fmt.Errorf("the command's arguments and environment are %d bytes, over the %d bytes Linux allows (a quarter of ulimit -s), so the command cannot start; the largest secrets are %s: make them memory-only files with files: in their sources",
		total, limit, strings.Join(largest, ", "))
}

// argLimit is what Linux allows the arguments and environment of execve
// together, as fs/exec.c computes it from the stack limit.
func argLimit() int {
	const minLimit, maxLimit = 128 << 10, 6 << 20
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_STACK, &rl); err != nil || rl.Cur == unix.RLIM_INFINITY {
		return maxLimit
	}
	return int(max(min(rl.Cur/4, maxLimit), minLimit))
}

// fieldForFiles writes a field as files: takes it.
func fieldForFiles(field string) string {
	if field == "" {
		return `""`
	}
	return field
}
