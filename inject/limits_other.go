//go:build !linux

package inject

// checkLimits checks nothing here: other systems have no limit per
// variable, and their total limit is large enough that exec's own error
// names the cause.
func checkLimits(args, env []string, vars []Variable) error { return nil }
