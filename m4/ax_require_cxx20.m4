# AX_REQUIRE_CXX20: add -std=c++20 and refuse a compiler that cannot do it.
AC_DEFUN([AX_REQUIRE_CXX20], [
  AC_LANG_PUSH([C++])
  save_CXXFLAGS="$CXXFLAGS"
  CXXFLAGS="$CXXFLAGS -std=c++20"
  AC_MSG_CHECKING([whether $CXX supports C++20])
  AC_COMPILE_IFELSE([AC_LANG_PROGRAM([[#include <optional>
#include <span>
#include <concepts>]], [[std::optional<int> o; (void)o;]])],
    [AC_MSG_RESULT([yes])],
    [AC_MSG_RESULT([no]); AC_MSG_ERROR([a C++20 compiler is required])])
  CXXFLAGS="$save_CXXFLAGS"
  AC_LANG_POP([C++])
  AM_CXXFLAGS_STD="-std=c++20"
  AC_SUBST([AM_CXXFLAGS_STD])
])
