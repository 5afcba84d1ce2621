export { ServedJournal, JOURNAL_FILE_NAME, JOURNAL_MAX_AGE_MS, JOURNAL_MAX_LINES, parseJournalLine, type ServedEntry, type ServedEnd, type JournalOptions } from "./served-journal.js";
export { ServedTally } from "./served-tally.js";
export { checkReceipt, checkReceiptAgainst, type ReceiptDecision, type RefusalCode } from "./check-receipt.js";
export { answerReceiptSign } from "./sign-receipts.js";
