package main

import (
	"strings"
)

// The catalog queries behind the shell's backslash commands, in one place
// so they can follow what the server's pg_catalog supports. They are the
// queries psql 15 sends (see shared/pgwire-captures/psql_E.txt), trimmed
// to the parts the shell prints, so a server that serves psql serves the
// shell too.

// listRelationsSQL is \dt (kinds "'r','p'") and \d with no argument
// (tables, views, sequences…). %KINDS% and %PATTERN% are filled in by
// listRelationsQuery.
const listRelationsSQL = `SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN (%KINDS%)
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
%PATTERN%  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;`

const (
	kindsTables    = `'r','p',''`
	kindsRelations = `'r','p','v','m','S','f',''`
)

// listRelationsQuery returns the \dt / \d query, restricted to names
// matching pattern when it is not empty.
func listRelationsQuery(kinds, pattern string) string {
	p := ""
	if pattern != "" {
		p = "  AND c.relname OPERATOR(pg_catalog.~) " + quoteLiteral(patternRegex(pattern)) + " COLLATE pg_catalog.default\n"
	}
	return strings.NewReplacer("%KINDS%", kinds, "%PATTERN%", p).Replace(listRelationsSQL)
}

// findRelationSQL finds the oid, schema and name of the relations \d NAME
// describes (psql's first \d query).
const findRelationSQL = `SELECT c.oid,
  n.nspname,
  c.relname
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname OPERATOR(pg_catalog.~) %PATTERN% COLLATE pg_catalog.default
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 2, 3;`

func findRelationQuery(pattern string) string {
	return strings.Replace(findRelationSQL, "%PATTERN%", quoteLiteral(patternRegex(pattern)), 1)
}

// describeColumnsSQL lists a relation's columns: name, type, default,
// not null, collation (psql's attribute query).
const describeColumnsSQL = `SELECT a.attname,
  pg_catalog.format_type(a.atttypid, a.atttypmod),
  (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true)
   FROM pg_catalog.pg_attrdef d
   WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef),
  a.attnotnull,
  (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t
   WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation,
  a.attidentity,
  a.attgenerated
FROM pg_catalog.pg_attribute a
WHERE a.attrelid = %OID% AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum;`

// describeIndexesSQL lists a table's indexes (psql's index query).
const describeIndexesSQL = `SELECT c2.relname, i.indisprimary, i.indisunique, i.indisclustered, i.indisvalid, pg_catalog.pg_get_indexdef(i.indexrelid, 0, true),
  pg_catalog.pg_get_constraintdef(con.oid, true), contype, condeferrable, condeferred, i.indisreplident, c2.reltablespace
FROM pg_catalog.pg_class c, pg_catalog.pg_class c2, pg_catalog.pg_index i
  LEFT JOIN pg_catalog.pg_constraint con ON (conrelid = i.indrelid AND conindid = i.indexrelid AND contype IN ('p','u','x'))
WHERE c.oid = %OID% AND c.oid = i.indrelid AND i.indexrelid = c2.oid
ORDER BY i.indisprimary DESC, c2.relname;`

func describeColumnsQuery(oid string) string {
	return strings.Replace(describeColumnsSQL, "%OID%", quoteLiteral(oid), 1)
}

func describeIndexesQuery(oid string) string {
	return strings.Replace(describeIndexesSQL, "%OID%", quoteLiteral(oid), 1)
}

// quoteLiteral quotes s as a standard SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// patternRegex turns a psql name pattern into an anchored regular
// expression as psql does: unquoted letters fold to lower case, "…" keeps
// case and quotes everything in it, * matches any run and ? one character,
// and regular-expression characters match themselves. A schema prefix
// ("public.t") is dropped: the catalog queries search the visible tables.
func patternRegex(pattern string) string {
	var b strings.Builder
	inQuote := false
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c == '"':
			if inQuote && i+1 < len(pattern) && pattern[i+1] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			inQuote = !inQuote
		case !inQuote && c == '.':
			b.Reset() // schema part: drop it
		case !inQuote && c == '*':
			b.WriteString(".*")
		case !inQuote && c == '?':
			b.WriteByte('.')
		case strings.IndexByte(`|*+?()[]{}.^$\`, c) >= 0:
			b.WriteByte('\\')
			b.WriteByte(c)
		case !inQuote && c >= 'A' && c <= 'Z':
			b.WriteByte(c + 'a' - 'A')
		default:
			b.WriteByte(c)
		}
	}
	return "^(" + b.String() + ")$"
}

// listDatabasesSQL is \l (psql 15's query).
const listDatabasesSQL = `SELECT d.datname as "Name",
       pg_catalog.pg_get_userbyid(d.datdba) as "Owner",
       pg_catalog.pg_encoding_to_char(d.encoding) as "Encoding",
       d.datcollate as "Collate",
       d.datctype as "Ctype",
       d.daticulocale as "ICU Locale",
       CASE d.datlocprovider WHEN 'c' THEN 'libc' WHEN 'i' THEN 'icu' END AS "Locale Provider",
       pg_catalog.array_to_string(d.datacl, E'\n') AS "Access privileges"
FROM pg_catalog.pg_database d
ORDER BY 1;`

// listSchemasSQL is \dn (psql 15's query).
const listSchemasSQL = `SELECT n.nspname AS "Name",
  pg_catalog.pg_get_userbyid(n.nspowner) AS "Owner"
FROM pg_catalog.pg_namespace n
WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
ORDER BY 1;`
