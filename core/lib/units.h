/*
 * units.h - the one place where sizes ("16G") and durations ("1h30m") are
 * parsed and formatted.  Every parser is overflow-safe and rejects trailing
 * garbage, empty input, signs and whitespace.
 */
#ifndef SURPLUS_UNITS_H
#define SURPLUS_UNITS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Size in bytes: a non-negative decimal number, optionally with a fraction
 * ("1.5G"), followed by an optional binary multiplier K, M, G, T, P or E
 * (case-insensitive, optionally followed by "i", "iB" or "B"; a bare "B"
 * means bytes).  "16G" = 16 * 2^30.  A fraction must yield a whole number of
 * bytes after rounding down.  Returns 0, -EINVAL (malformed) or -ERANGE
 * (does not fit in uint64_t); *ret is untouched on failure.
 */
int units_parse_size(const char *s, uint64_t *ret);

/*
 * Duration in milliseconds.  Accepted forms:
 *   "90"                  plain seconds
 *   "500ms" "90s" "10m" "2h" "3d" "1w"   one number with a unit
 *   "1h30m" "1d2h3m4s" "2m30s500ms"      several, largest unit first, each
 *                                        unit at most once
 *   "MM:SS" "HH:MM:SS" "D-HH:MM:SS" "D-HH"  clock forms (as Slurm's
 *                                        --time, except a bare number is
 *                                        seconds here, not minutes)
 * In the clock forms minutes and seconds must be below 60 when preceded by a
 * larger field.  Returns 0, -EINVAL or -ERANGE; *ret untouched on failure.
 */
int units_parse_duration_ms(const char *s, uint64_t *ret);

/* "16.0 GiB", "512 B", "1.5 MiB" into buf; returns buf. */
char *units_format_size(uint64_t bytes, char *buf, size_t len);

/* "1h30m", "90ms", "0s" into buf (exact, largest units first); returns buf. */
char *units_format_duration_ms(uint64_t ms, char *buf, size_t len);

#endif
