// Entry points and op tables, each declared once, in the file that
// implements it:
//
//   // squash({ s, out, dim })
//   CAPSNET_ENTRY(squash, "s", "out", "dim") {
//     View<float> s = a.f32("s");
//     ...
//   }
//
//   enum class UnaryOp { Neg, Abs, ..., Count };
//   constexpr const char* kUnaryOpNames[] = {"Neg", "Abs", ...};
//   CAPSNET_OP_TABLE(unary, UnaryOp, kUnaryOpNames);
//
// Both add themselves to a list at load time (static initialisation), and
// the module's Init (addon.cc) exports every entry, with the names of its
// settings, and the op tables (opTables()). TypeScript declares the same
// entries, with the types of their settings, and the op names it uses in
// src/backend/kernelTable.ts; src/native/boundary/addon.ts compares the two
// when the addon loads and gives each entry its one-object form (args.h).
#pragma once

#include <initializer_list>
#include <vector>

#include "args.h"

namespace capsnet {

using EntryFn = void (*)(Args&);

// One entry point of the addon and the names of its settings.
struct EntryPoint {
  const char* name;
  EntryFn fn;
  std::vector<const char*> settings;
  EntryPoint(const char* entryName, EntryFn entryFn, std::initializer_list<const char*> settingNames);
};

// Most settings one entry may declare (Args keeps one bit per setting).
constexpr size_t kMaxSettings = 64;

// Every registered entry point (filled before the module's Init runs).
std::vector<const EntryPoint*>& entryPoints();

inline EntryPoint::EntryPoint(const char* entryName, EntryFn entryFn, std::initializer_list<const char*> settingNames)
    : name(entryName), fn(entryFn), settings(settingNames) {
  entryPoints().push_back(this);
}

// The names of an op family's codes: names[code] for code < count.
struct OpTable {
  const char* family;
  const char* const* names;
  size_t count;
  OpTable(const char* tableFamily, const char* const* tableNames, size_t tableCount);
};

std::vector<const OpTable*>& opTables();

inline OpTable::OpTable(const char* tableFamily, const char* const* tableNames, size_t tableCount)
    : family(tableFamily), names(tableNames), count(tableCount) {
  opTables().push_back(this);
}

// The N-API callback of every entry: runs it on the values of its settings,
// checks that it read every setting it declares, and turns C++ exceptions
// into JS errors.
napi_value invoke(napi_env env, napi_callback_info info);

}  // namespace capsnet

// Defines entry point `name` with the settings named after it (none for an
// entry without settings): a function of `Args& a` that JS calls as
// addon.name({ ...settings }).
#define CAPSNET_ENTRY(name, ...)                                                            \
  static void name##Entry(::capsnet::Args& a);                                              \
  static const ::capsnet::EntryPoint name##EntryPoint(#name, name##Entry, {__VA_ARGS__});   \
  static void name##Entry(::capsnet::Args& a)

// Registers op family `family`: `Op` is an enum class ending in Count and
// `names` its names, one per code in enum order (the count is checked at
// compile time).
#define CAPSNET_OP_TABLE(family, Op, names)                                                                     \
  static_assert(sizeof(names) / sizeof((names)[0]) == static_cast<size_t>(Op::Count), #family ": one name per " #Op); \
  static const ::capsnet::OpTable family##OpTable(#family, names, sizeof(names) / sizeof((names)[0]))
