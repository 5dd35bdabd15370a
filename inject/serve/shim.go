package serve

// ShimArg, as secretrun's first argument, makes it the shim that starts a
// child with handed-off sockets: `secretrun __secretrun-listen-exec --
// COMMAND ARGS...`. No user command or flag starts with two underscores
// and the program's name.
const ShimArg = "__secretrun-listen-exec"
