// Package authtest makes throwaway certificate authorities, certificates
// and auth files for tests of auth and of the packages that use it
// (pgwire, server, test/). Everything is generated with crypto/x509 into
// t.TempDir(); no openssl is needed.
//
// NewCA makes a CA (CA.CertFile is for --tls-ca); CA.Issue makes a
// certificate and key file for 127.0.0.1 and localhost (CertOptions for
// other hosts, validity or usages); WriteAuthFile writes an auth file of
// users and passwords, with few PBKDF2 iterations to keep tests fast.
// To debug a TLS failure, inspect the files with
// `openssl x509 -in FILE -noout -text`.
package authtest
