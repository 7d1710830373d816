// Package apply implements `kiln apply -f FILE`: create or update every
// object of a multi-document YAML/JSON file. All documents are decoded and
// validated before the first write, so a bad file changes nothing.
package apply
