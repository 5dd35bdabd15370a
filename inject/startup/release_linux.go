package startup

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseCode unmaps the pages of secretrun's own executable that are not
// writable — code, read-only data, the function tables — from its address
// space. Start-up touches pages all over a binary that links four SDKs, and
// the kernel maps their neighbours with them: ≈ 20 MB of resident memory
// that a supervisor waiting on its child does not use. They are clean copies
// of the file, so this is what the kernel does to them under memory
// pressure anyway: whatever is needed again is mapped back from the page
// cache on its next use, and other processes running the same binary keep
// theirs. Writable mappings (data, heap) are never touched.
func releaseCode() {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 00400000-01182000 r-xp 00000000 fd:01 1234  /usr/bin/secretrun
		fields := strings.Fields(sc.Text())
		if len(fields) != 6 || fields[5] != exe || strings.ContainsRune(fields[1], 'w') {
			continue
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
	}
}
