package mask_test

import (
	"encoding/base64"
	"fmt"
	"os"

	"github.com/secretrun/secretrun/inject/mask"
)

func ExampleNew() {
	values := []string{"s3cr3t-t0ken", "abc"}
	w := mask.New(os.Stdout, values, mask.Options{})
	for _, i := range w.Skipped() {
		// Name the variable, never the value, in a real warning.
		fmt.Fprintf(os.Stderr, "secretrun: value %d is too short to mask\n", i)
	}
	fmt.Fprintln(w, "token=s3cr3t-t0ken")
	fmt.Fprintln(w, "auth="+base64.StdEncoding.EncodeToString([]byte("s3cr3t-t0ken")))
	fmt.Fprint(w, `{"token":"s3cr3t-`) // split across writes
	fmt.Fprintln(w, `t0ken"} abc`)
	w.Close()
	// Output:
	// token=*****
	// auth=*****
	// {"token":"*****"} abc
}

func ExampleWriteAddMask() {
	// The caller does this only when GITHUB_ACTIONS is "true".
	values := []string{"s3cr3t-t0ken", "-----BEGIN KEY-----\nMIIEvQIBADANBg\n-----END KEY-----\n"}
	if err := mask.WriteAddMask(os.Stdout, values); err != nil {
		fmt.Fprintln(os.Stderr, "secretrun:", err)
	}
	// Output:
	// ::add-mask::s3cr3t-t0ken
	// ::add-mask::-----BEGIN KEY-----
	// ::add-mask::MIIEvQIBADANBg
	// ::add-mask::-----END KEY-----
}
