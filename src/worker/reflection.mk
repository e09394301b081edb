# Server reflection (src/worker/reflection.c). Included by the top-level
# Makefile after its variables (BUILD, CC, ALL_CFLAGS, obj): generates
# the descriptor set the module answers from, embeds it as a C array, and
# generates protobuf-c code for descriptor.proto and reflection.proto.
# Everything generated goes under $(BUILD)/gen, nothing into the tree.

REFLECTION_GRPC_PROTO ?= $(or $(GRPC_PROTO_DIR),/usr/share/grpc-proto)
REFLECTION_PROTOBUF_INCLUDE ?= /usr/include

# The files whose descriptors are served; --include_imports adds their
# imports. Names in the set are relative to the -I directories, which is
# what clients ask for ("quote_service.proto", "grpc/health/v1/...").
REFLECTION_PROTOS = proto/quote_service.proto \
	$(REFLECTION_GRPC_PROTO)/grpc/health/v1/health.proto \
	$(REFLECTION_GRPC_PROTO)/grpc/reflection/v1alpha/reflection.proto \
	$(REFLECTION_GRPC_PROTO)/grpc/reflection/v1/reflection.proto

REFLECTION_SET = $(BUILD)/gen/reflection_descriptors.pb
REFLECTION_SET_C = $(BUILD)/gen/reflection_descriptors.c
REFLECTION_DESC_C = $(BUILD)/gen/google/protobuf/descriptor.pb-c.c
REFLECTION_MSG_C = $(BUILD)/gen/grpc/reflection/v1alpha/reflection.pb-c.c
REFLECTION_GEN_C = $(REFLECTION_DESC_C) $(REFLECTION_MSG_C) $(REFLECTION_SET_C)
REFLECTION_GEN_H = $(REFLECTION_DESC_C:.c=.h) $(REFLECTION_MSG_C:.c=.h)
REFLECTION_GEN_OBJS = $(patsubst $(BUILD)/gen/%.c,$(BUILD)/obj/gen/%.o,$(REFLECTION_GEN_C))

# wire.o, utf8.o: request strings are checked as proto3 requires.
REFLECTION_OBJS = $(call obj,src/worker/reflection.c src/worker/wire.c \
	src/common/utf8.c) \
	$(REFLECTION_GEN_OBJS)

$(REFLECTION_SET): $(REFLECTION_PROTOS)
	@mkdir -p $(@D)
	@echo "  PROTOC  $@"
	$(Q)protoc --include_imports --descriptor_set_out=$@ -Iproto \
		-I$(REFLECTION_GRPC_PROTO) $(REFLECTION_PROTOS)

# c_array is the Makefile's.
$(REFLECTION_SET_C): $(REFLECTION_SET)
	@mkdir -p $(@D)
	@echo "  GEN     $@"
	$(Q)$(call c_array,reflection_descriptors,reflection.mk)

$(REFLECTION_DESC_C): $(REFLECTION_PROTOBUF_INCLUDE)/google/protobuf/descriptor.proto
	@mkdir -p $(BUILD)/gen
	@echo "  PROTOC  $@"
	$(Q)protoc-c --c_out=$(BUILD)/gen -I$(REFLECTION_PROTOBUF_INCLUDE) \
		google/protobuf/descriptor.proto
$(REFLECTION_DESC_C:.c=.h): $(REFLECTION_DESC_C)

$(REFLECTION_MSG_C): $(REFLECTION_GRPC_PROTO)/grpc/reflection/v1alpha/reflection.proto
	@mkdir -p $(BUILD)/gen
	@echo "  PROTOC  $@"
	$(Q)protoc-c --c_out=$(BUILD)/gen -I$(REFLECTION_GRPC_PROTO) \
		grpc/reflection/v1alpha/reflection.proto
$(REFLECTION_MSG_C:.c=.h): $(REFLECTION_MSG_C)

# Outside the tree, so the generic $(BUILD)/obj/%.o rule cannot build them.
$(REFLECTION_GEN_OBJS): $(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(REFLECTION_GEN_H)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(call obj,src/worker/reflection.c tests/test_reflection.c): $(REFLECTION_GEN_H)

$(BUILD)/tests/test_reflection: $(call obj,tests/test_reflection.c) $(REFLECTION_OBJS)
