/* Record views: a record handed to a script as its JSON text behind a userdata, decoded
 * one field at a time when the script reads it, instead of as a table decoded in full.
 *
 * A consumer's merge reads two or three fields of a record and adds two or three; the
 * full decode made a Lua string of every name, email and address (interned in the
 * state's string table, which the join's ids make large), and the full encode turned
 * them back into text. A view keeps the text: fields the script never wrote are copied
 * from it as they are when the record is encoded, so only what the script read or wrote
 * goes through Lua.
 *
 * A view behaves as a table for reading (c.name, c["name"]), writing (c.x = v, c.x =
 * nil), pairs(c) and junction.json_encode(c); it is not one for type(), next(), rawget
 * and rawset, which is why a script asks for views (its module's `views = true`). A
 * field that holds an object or array is decoded into a table on its first read and
 * kept, so changes made to that table are part of the record. Views are only made of
 * objects in canonical form (jn_json_is_canonical), whose members are sorted and whose
 * keys hold no escapes, so a copied member is what encoding it would give. Its members
 * may come in any order (an API's records list "id" first): encoding sorts them, and
 * only a view whose text was sorted already is its own encoding. */
#ifndef JN_RECORD_VIEW_H
#define JN_RECORD_VIEW_H

#include <lua.h>
#include <stddef.h>

typedef struct jn_view jn_view;

/* Pushes a view of the JSON text (copied) and returns 0; or pushes nothing and returns
 * -1 when the text is not an object with at most 64 members, canonical but for the
 * order of its members (jn_json_object_members): the caller then decodes it into a
 * table. */
int jn_view_push(lua_State *L, const char *json, size_t len);

/* The same, for text the caller already checked with jn_json_is_canonical (canonical
 * 1): it is not checked again. */
int jn_view_push_checked(lua_State *L, const char *json, size_t len, int canonical);

/* The view at idx, or NULL when the value there is not one. */
jn_view *jn_view_test(lua_State *L, int idx);

/* Whether the view's text has its members in key order (it is canonical as it is). */
int jn_view_sorted(const jn_view *v);

/* The number of members of the text the view was made of, and the i-th of them (keys
 * without quotes; values as text). */
size_t jn_view_count(const jn_view *v);
void jn_view_member(const jn_view *v, size_t i, const char **key, size_t *klen, const char **val,
                    size_t *vlen);

/* Pushes the text the view at idx was made of, a Lua string. */
void jn_view_push_text(lua_State *L, int idx);

/* The text the view was made of. */
const char *jn_view_text(const jn_view *v, size_t *len);

/* Pushes the table of what the script wrote to the view at idx and the fields it decoded
 * into tables (or nil when there is none yet); returns its type. */
int jn_view_push_changes(lua_State *L, int idx);

/* Whether the value at idx is the mark of a field the script set to nil (in the table of
 * changes). */
int jn_view_is_deleted(lua_State *L, int idx);

/* Field k of the view at idx as its text, without making a Lua value of it: returns 1
 * with *val and *vlen (the canonical JSON of the value), 0 when the record has no such
 * field, -1 when the value at idx is not a view or the script changed the field (then
 * jn_view_get tells). */
int jn_view_raw(lua_State *L, int idx, const char *k, const char **val, size_t *vlen);

/* Pushes field k of the view at idx as the script would read it; returns its type.
 * Runs no script code. */
int jn_view_get(lua_State *L, int idx, const char *k);

#endif
