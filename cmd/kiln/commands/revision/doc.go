// Package revision implements `kiln revision` (list, describe, delete).
// Revisions are stamped by the controller; users only read and delete them.
package revision
