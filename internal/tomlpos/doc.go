// Package tomlpos finds where keys and values are written in a TOML
// document that BurntSushi/toml has already decoded successfully, so that
// errors found after decoding can still name line and column.
//
// The decoder's own position data is keyed by dotted key path: every table
// of an array of tables shares the position of the last one, and it only
// surfaces through the first decode error. [Locate] instead scans the text
// once and records, for every path such as "rule[2].callers[1]", where its
// key (or table header, or array element) and its value start.
//
// Paths join key names with "." and give array elements, of arrays and of
// arrays of tables alike, as "[n]" with n counted from 0; [Join] and [Index]
// build them.
package tomlpos
