// Package storepb is the encoding of the on-disk metadata records of the file and bolt stores:
// ServerInfo, ClientInfo/ClientDelete, SubState/SubStateDelete/SubStateUpdate and ChannelInfo.
// Messages themselves are not protobuf in our stores.
//
// The source is store.proto; the generated code is in *.pb.go (committed; regenerate with
// `make proto`). Records outlive upgrades: fields are never renumbered or retyped.
package storepb
