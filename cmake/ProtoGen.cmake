# skiff_grpc_proto(TARGET name PROTO file.proto): generates protobuf + grpc++ C++ code for one
# .proto into the build tree and wraps it in a static library that links grpc++.
function(skiff_grpc_proto)
  cmake_parse_arguments(ARG "" "TARGET;PROTO" "" ${ARGN})
  get_filename_component(proto_abs ${ARG_PROTO} ABSOLUTE)
  get_filename_component(proto_dir ${proto_abs} DIRECTORY)
  get_filename_component(proto_name ${proto_abs} NAME_WE)
  set(out ${CMAKE_CURRENT_BINARY_DIR}/gen)
  file(MAKE_DIRECTORY ${out})
  set(srcs ${out}/${proto_name}.pb.cc ${out}/${proto_name}.grpc.pb.cc)
  set(hdrs ${out}/${proto_name}.pb.h ${out}/${proto_name}.grpc.pb.h)
  add_custom_command(
    OUTPUT ${srcs} ${hdrs}
    COMMAND ${PROTOC} --proto_path=${proto_dir} --cpp_out=${out} --grpc_out=${out}
            --plugin=protoc-gen-grpc=${GRPC_CPP_PLUGIN} ${proto_abs}
    DEPENDS ${proto_abs}
    COMMENT "protoc ${proto_name}.proto")
  add_library(${ARG_TARGET} STATIC ${srcs})
  target_include_directories(${ARG_TARGET} SYSTEM PUBLIC ${out})
  # Generated code is not ours to keep warning-free.
  target_compile_options(${ARG_TARGET} PRIVATE -Wno-error -w)
  target_link_libraries(${ARG_TARGET} PUBLIC PkgConfig::GRPCPP PkgConfig::PROTOBUF)
endfunction()
