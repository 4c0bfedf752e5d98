// ethers' own EIP-712 encoding, as a wallet computes it: `hash <typed-data JSON>` prints the
// digest, `recover <typed-data JSON> <signature>` the address that signed it.
import { TypedDataEncoder, verifyTypedData } from "ethers";

const [command, json, signature] = process.argv.slice(2);
const typed = JSON.parse(json);
const types = { ...typed.types };
delete types.EIP712Domain;
if (command === "hash") {
  console.log(TypedDataEncoder.hash(typed.domain, types, typed.message));
} else if (command === "recover") {
  console.log(verifyTypedData(typed.domain, types, typed.message, signature));
} else {
  throw new Error(`unknown command ${command}`);
}
