//go:build !unix

package regfile

// openFlags: systems without FIFOs in the file system need none.
const openFlags = 0
