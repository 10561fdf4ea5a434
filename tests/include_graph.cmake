# Checks every #include "<folder>/..." edge under src/ against the dependency graph in
# CONVENTIONS.md. Run as: cmake -DSRC_DIR=<repo>/src -P tests/include_graph.cmake
# Including your own folder is always allowed. A folder under src/ that is not in the table below is
# itself a violation: add new folders here, with their allowed edges, when they are created.
cmake_minimum_required(VERSION 3.25)

if(NOT DEFINED SRC_DIR OR NOT IS_DIRECTORY "${SRC_DIR}")
  message(FATAL_ERROR "include_graph: pass -DSRC_DIR=<repo>/src (got '${SRC_DIR}')")
endif()

# The table: folder -> folders it may include (besides itself).
set(allowed_base "")
set(allowed_grpc base)
set(allowed_policy base)
set(allowed_route grpc base)
set(allowed_config base)
set(allowed_net base)
set(allowed_tls net base)
set(allowed_h2 net base)
set(allowed_upstream h2 tls net policy base)
set(allowed_telemetry base)
set(allowed_proxy route policy upstream h2 grpc telemetry net base)
set(allowed_admin telemetry net base)
set(known_folders base grpc policy route config net tls h2 upstream telemetry proxy admin server)
set(allowed_server ${known_folders})
list(REMOVE_ITEM allowed_server server)
# src/main.cc is the only file allowed directly under src/.
set(allowed_main.cc server base)

function(describe_allowed from out_var)
  set(list ${allowed_${from}})
  if(list)
    list(JOIN list ", " text)
  else()
    set(text "none")
  endif()
  set(${out_var} "${text}" PARENT_SCOPE)
endfunction()

file(GLOB_RECURSE sources RELATIVE "${SRC_DIR}" "${SRC_DIR}/*.h" "${SRC_DIR}/*.cc")
list(SORT sources)

set(violations "")
set(unknown_reported "")
set(file_count 0)
set(edge_count 0)
set(folders_seen "")

foreach(rel IN LISTS sources)
  math(EXPR file_count "${file_count} + 1")
  string(FIND "${rel}" "/" slash)
  if(slash EQUAL -1)
    set(from "${rel}")  # a file directly under src/
    if(NOT rel STREQUAL "main.cc")
      list(APPEND violations "src/${rel}: unknown file directly under src/ (only main.cc belongs there)")
      continue()
    endif()
  else()
    string(SUBSTRING "${rel}" 0 ${slash} from)
    if(NOT from IN_LIST known_folders)
      if(NOT from IN_LIST unknown_reported)
        list(APPEND unknown_reported "${from}")
        list(APPEND violations
             "src/${from}/: unknown folder (add it and its allowed edges to tests/include_graph.cmake)")
      endif()
      continue()
    endif()
  endif()
  list(APPEND folders_seen "${from}")
  describe_allowed("${from}" allowed_text)

  # Only #include lines; the regex keeps file(STRINGS) from splitting unrelated lines on ';'.
  file(STRINGS "${SRC_DIR}/${rel}" lines REGEX "^[ \t]*#[ \t]*include[ \t]*\"")
  foreach(line IN LISTS lines)
    if(NOT line MATCHES "^[ \t]*#[ \t]*include[ \t]*\"([^\"]*)\"")
      continue()
    endif()
    set(target "${CMAKE_MATCH_1}")
    string(FIND "${target}" "/" target_slash)
    if(target_slash EQUAL -1)
      continue()  # "foo.h": a file next to this one
    endif()
    string(SUBSTRING "${target}" 0 ${target_slash} to)
    if(to STREQUAL "." OR to STREQUAL "..")
      # A relative path would let an edge hide from this check.
      list(APPEND violations
           "src/${rel}: includes \"${target}\" (write \"<folder>/<file>\", relative paths are not allowed)")
      continue()
    endif()
    if(NOT to IN_LIST known_folders AND NOT IS_DIRECTORY "${SRC_DIR}/${to}")
      continue()  # not a skiff folder, e.g. a quoted third-party header
    endif()
    math(EXPR edge_count "${edge_count} + 1")
    if(to STREQUAL from OR to IN_LIST allowed_${from})
      continue()
    endif()
    list(APPEND violations "src/${rel}: includes ${to}/ (allowed: ${allowed_text})")
  endforeach()
endforeach()

if(violations)
  list(LENGTH violations count)
  list(JOIN violations "\n  " text)
  message(FATAL_ERROR
          "include_graph: ${count} violation(s) of the dependency graph in CONVENTIONS.md:\n  ${text}\n")
endif()

list(REMOVE_DUPLICATES folders_seen)
list(LENGTH folders_seen folder_count)
message(STATUS "include_graph: OK (${file_count} files in ${folder_count} folders, "
               "${edge_count} folder #include edges checked)")
