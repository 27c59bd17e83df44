# Included by tools/build_msgs.sh through CMAKE_PROJECT_INCLUDE, only for the pip set-up.
#
# The ROS 2 Jazzy wheels on PyPI were built in a manylinux image and export the
# include folders of that image's Python and numpy (/opt/python/cp312-cp312/...)
# in the INTERFACE_INCLUDE_DIRECTORIES of their imported targets. Those folders
# do not exist here, so CMake's generate step fails. Once every target has been
# imported (a deferred call at the end of the top-level CMakeLists.txt), point
# such paths at the same folders of the Python we build for.

function(_dp_ros_fix_wheel_python_includes)
  execute_process(
    COMMAND "${Python3_EXECUTABLE}" -c "import sysconfig; p = sysconfig.get_paths(); print(p['include'] + ';' + p['purelib'])"
    OUTPUT_VARIABLE python_paths
    OUTPUT_STRIP_TRAILING_WHITESPACE
    COMMAND_ERROR_IS_FATAL ANY)
  list(GET python_paths 0 python_include)
  list(GET python_paths 1 python_site_packages)
  get_property(imported DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  set(fixed 0)
  foreach(target IN LISTS imported)
    get_target_property(includes ${target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT includes)
      continue()
    endif()
    set(new_includes "")
    set(changed FALSE)
    foreach(dir IN LISTS includes)
      if(dir MATCHES "^/opt/python/cp[0-9]+-cp[0-9]+/" AND NOT EXISTS "${dir}")
        string(REGEX REPLACE "^/opt/python/[^/]+/include/python[0-9.]+" "${python_include}" dir "${dir}")
        string(REGEX REPLACE "^/opt/python/[^/]+/lib/python[0-9.]+/site-packages" "${python_site_packages}" dir "${dir}")
        if(NOT EXISTS "${dir}")
          message(FATAL_ERROR "dp_ros: ${target} needs ${dir}, which does not exist (is numpy installed in this Python?)")
        endif()
        list(APPEND new_includes "${dir}")
        set(changed TRUE)
      else()
        list(APPEND new_includes "${dir}")
      endif()
    endforeach()
    if(changed)
      list(REMOVE_DUPLICATES new_includes)
      set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${new_includes}")
      math(EXPR fixed "${fixed} + 1")
    endif()
  endforeach()
  message(STATUS "dp_ros: pointed ${fixed} wheel target(s) at the Python and numpy headers of ${Python3_EXECUTABLE}")
endfunction()

if(NOT Python3_EXECUTABLE)
  message(FATAL_ERROR "dp_ros: pass -DPython3_EXECUTABLE=<venv>/bin/python when building with the PyPI wheels")
endif()
cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _dp_ros_fix_wheel_python_includes)
