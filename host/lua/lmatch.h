/*
** lmatch.h: Lua's pattern matching (string.find, match, gmatch, gsub) for
** the sandbox, with every step of the matcher charged to the running
** call's instruction budget.
**
** The string library's own matcher backtracks inside one C call the count
** hook never sees: `("a"):rep(3000):find(".-.-b")` takes billions of steps.
** These versions keep Lua 5.4's semantics (the same results and error
** messages; tests/c/test_lvm.c compares them with the stock library) and
** call lvm_charge as they go, so a pathological pattern ends in the budget
** error like a runaway loop does.
*/
#ifndef TAILOR_LMATCH_H
#define TAILOR_LMATCH_H

#include <lua.h>

#define LMATCH_MAX_CAPTURES 32   /* as Lua's LUA_MAXCAPTURES */
#define LMATCH_MAX_DEPTH 200     /* nested items before "pattern too complex" */
#define LMATCH_CHARGE_EVERY 1024 /* matcher steps between budget charges */

/*
** Replace find, match, gmatch and gsub in the table at `idx` (the string
** library, which strings also reach through their metatable).  Only for
** lvm states: the functions charge the lvm's budget.
*/
void lmatch_open(lua_State *L, int idx);

#endif /* TAILOR_LMATCH_H */
