// Package reload keeps the policy that a listener enforces and replaces it
// when its file changes.
//
// A reload parses, validates and compiles the new file before it swaps the
// pointer that requests read, so a request sees either the old policy or the
// new one, never a mix, and a file that fails to load never replaces the
// running policy. Changes are noticed on SIGHUP (the caller calls Reload)
// and by watching the file's directory, which also catches atomic renames
// and the symlink swaps of Kubernetes ConfigMap volumes.
package reload
